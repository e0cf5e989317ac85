// The decoder's key/value cache, preallocated for the whole context so decoding never allocates.
#pragma once
#include <cstdint>
#include <memory>

namespace qvl {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t n_ctx);

  int64_t capacity() const { return n_ctx_; }
  int64_t size() const { return n_past_; }
  void truncate(int64_t n_past);  // keep the first n_past positions (0 <= n_past <= size())
  void grow(int64_t n);           // n more positions were written; throws when past capacity()

  // Head-major rows: keys(layer, head) + pos * head_dim is the key of position pos.
  float* keys(int64_t layer, int64_t kv_head) { return storage_.get() + offset(layer, 0, kv_head); }
  float* values(int64_t layer, int64_t kv_head) { return storage_.get() + offset(layer, 1, kv_head); }
  size_t bytes() const { return elements_ * sizeof(float); }

 private:
  size_t offset(int64_t layer, int64_t which, int64_t kv_head) const {
    return static_cast<size_t>(((layer * 2 + which) * n_kv_heads_ + kv_head) * n_ctx_ * head_dim_);
  }

  int64_t n_kv_heads_, head_dim_, n_ctx_;
  int64_t n_past_ = 0;
  size_t elements_;
  // Left uninitialised on purpose: pages become resident only as positions are written.
  std::unique_ptr<float[]> storage_;
};

}  // namespace qvl
