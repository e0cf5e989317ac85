// Grouped-query causal attention of the decoder over its KV cache. The kernels that do the work are
// the op table's (op_table.h: causal_group); this cuts the work into query groups for the pool.
#pragma once
#include <cstdint>

#include "common/thread_pool.h"
#include "model/kv_cache.h"

namespace qvl {

struct AttentionShape {
  int64_t n_heads;
  int64_t n_kv_heads;
  int64_t head_dim;
};

// q: n rows of n_heads * head_dim (rotated) for the cache positions [first, first + n), whose keys and
// values are already in the cache. Query i sees positions [0, first + i]: causality follows sequence
// order, never position values, which M-RoPE makes non-monotonic after an image.
// out: n rows of n_heads * head_dim. scratch: pool.size() * causal_attention_scratch_floats(...) floats.
int64_t causal_attention_scratch_floats(int64_t capacity, int64_t head_dim);
void causal_attention(const float* q, int64_t n, int64_t first, KvCache& cache, int64_t layer, const AttentionShape& shape,
                      float* out, float* scratch, ThreadPool& pool);

}  // namespace qvl
