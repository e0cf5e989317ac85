// The decoder: token embedding, blocks of RMSNorm -> GQA attention with M-RoPE -> RMSNorm -> SwiGLU MLP,
// final norm, output projection (the token embedding when the file ties them). What differs between the
// Qwen2 and Qwen3 blocks, the M-RoPE layout and deepstack come from the TextSpec.
// Weights are views into the mapped GGUF; the KV cache and every activation buffer are allocated once.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/kernels.h"
#include "backend/backend.h"
#include "gguf/gguf_file.h"
#include "model/activation_dump.h"
#include "model/kv_cache.h"
#include "model/model_spec.h"
#include "model/mrope.h"

namespace qvl {

enum class LogitsWanted { None, Last, All };

// The tokens of one forward call: ids, optionally replaced by given embeddings (vision tokens), and
// their M-RoPE positions as three rows of n (t, h, w).
struct TokenBatch {
  int64_t n = 0;
  const int32_t* ids = nullptr;
  const int32_t* positions = nullptr;  // [3][n]
  // [n_embedded][1 + n_deepstack][hidden]: per embedded row the embedding that replaces its id's, then
  // its deepstack features, the k-th added to the row's hidden state after layer k.
  const float* embeddings = nullptr;
  const int32_t* embedded_rows = nullptr;  // [n_embedded] indices into the batch
  int64_t n_embedded = 0;
  int64_t n_deepstack = 0;  // 0, or the spec's deepstack_layers
};

class TextDecoder {
 public:
  // The pool is shared with the vision encoder of the same model.
  TextDecoder(std::shared_ptr<GgufFile> file, const TextSpec& spec, int64_t n_ctx, int64_t n_batch,
              std::shared_ptr<ThreadPool> pool);

  const TextSpec& spec() const { return spec_; }
  int64_t n_past() const { return cache_.size(); }
  int64_t n_ctx() const { return cache_.capacity(); }
  void truncate(int64_t n_past) { cache_.truncate(n_past); }
  size_t kv_cache_bytes() const { return cache_.bytes(); }

  // Appends the batch to the cache and runs it in chunks of n_batch. logits receives vocab_size floats
  // for the last token (Last) or for every token (All). dump, when given, receives "input" and
  // "block.<i>" (every token's hidden state after layer i).
  void forward(const TokenBatch& batch, LogitsWanted wanted, float* logits, Precision precision,
               ActivationDump* dump = nullptr);

 private:
  struct Layer {
    const float* attn_norm;
    WeightView q, k, v, o;
    const float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr;  // TextBlockKind::Qwen2
    const float *q_norm = nullptr, *k_norm = nullptr;                     // TextBlockKind::Qwen3, [head_dim]
    const float* ffn_norm;
    WeightView gate, up, down;
  };

  Layer load_layer(int64_t index);
  void forward_chunk(const TokenBatch& batch, int64_t begin, int64_t count, LogitsWanted wanted, float* logits,
                     Precision precision, ActivationDump* dump);
  void embed(const TokenBatch& batch, int64_t begin, int64_t count);
  void add_deepstack(const TokenBatch& batch, int64_t layer, int64_t begin, int64_t count);
  void attention_block(const Layer& layer, int64_t index, const TokenBatch& batch, int64_t begin, int64_t count,
                       Precision precision);
  // Biases (Qwen2) or per-head q/k norms (Qwen3) on one token's projections, before RoPE.
  void prepare_query_key(const Layer& layer, float* q, float* k, float* v) const;
  void mlp_block(const Layer& layer, int64_t count, Precision precision);
  void project_logits(const float* hidden_rows, int64_t count, float* logits, Precision precision);
  // row_fn(i) for i < count, on the pool's threads (a single row, as in decode, runs on the calling
  // thread): the per-token work between the matmuls (norms, biases, rope, activations, residuals).
  template <typename RowFn>
  void for_each_row(int64_t count, const RowFn& row_fn);
  const float* vector(const std::string& name, int64_t length);
  WeightView matrix(const std::string& name, int64_t rows, int64_t cols) const;

  std::shared_ptr<GgufFile> file_;
  TextSpec spec_;
  int64_t n_batch_;
  std::shared_ptr<ThreadPool> pool_;
  MRope rope_;
  KvCache cache_;
  AttentionShape attention_shape_;
  WeightView token_embedding_, output_;
  const float* output_norm_;
  std::vector<Layer> layers_;
  std::vector<std::vector<float>> converted_vectors_;  // 1-D weights a file stored in another type than F32
  // Activations for one chunk of n_batch tokens.
  std::vector<float> x_, normed_, q_, k_, v_, attended_, projected_, gate_, up_, scores_;
};

}  // namespace qvl
