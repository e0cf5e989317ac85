#include "model/kv_cache.h"

#include <stdexcept>
#include <string>

namespace qvl {

KvCache::KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t n_ctx)
    : n_kv_heads_(n_kv_heads), head_dim_(head_dim), n_ctx_(n_ctx) {
  if (n_ctx <= 0) throw std::invalid_argument("n_ctx must be positive");
  elements_ = static_cast<size_t>(n_layers * 2 * n_kv_heads * n_ctx * head_dim);
  storage_.reset(new float[elements_]);
}

void KvCache::grow(int64_t n) {
  if (n < 0 || n > n_ctx_ - n_past_) {
    throw std::length_error("the context is full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
                            " positions exceed n_ctx = " + std::to_string(n_ctx_));
  }
  n_past_ += n;
}

void KvCache::truncate(int64_t n_past) {
  if (n_past < 0 || n_past > n_past_) {
    throw std::invalid_argument("cannot keep " + std::to_string(n_past) + " cached positions of " + std::to_string(n_past_));
  }
  n_past_ = n_past;
}

}  // namespace qvl
