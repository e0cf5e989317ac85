// Grouped-query causal attention of the decoder over its KV cache.
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

// The queries the vectorised kernels attend together: the `heads` query heads sharing one key/value
// head at n_positions consecutive positions (heads * n_positions <= the kernel's lanes: kGroupLanes
// for avx2, kGroupLanesAvx512 for avx512). Position p sees keys [0, first_keys + p).
constexpr int64_t kGroupLanes = 24;        // 3 AVX2 vectors
constexpr int64_t kGroupLanesAvx512 = 48;  // 3 AVX-512 vectors
struct QueryGroup {
  const float* q;        // first position's first head of the group; positions row_stride floats apart
  float* out;            // laid out as q
  int64_t row_stride;
  int64_t n_positions;
  int64_t heads;
  int64_t head_dim;      // a multiple of 8
  int64_t first_keys;
};

#if defined(QVL_HAVE_AVX2_BUILD)
namespace avx2 {
// scratch: causal_attention_scratch_floats(keys of the last position, head_dim) floats.
void attend_query_group(const QueryGroup& group, const float* keys, const float* values, float scale, float* scratch);
}  // namespace avx2
#endif
#if defined(QVL_HAVE_AVX512_BUILD)
namespace avx512 {
// As avx2::attend_query_group, with up to kGroupLanesAvx512 queries; bit-identical results.
void attend_query_group(const QueryGroup& group, const float* keys, const float* values, float scale, float* scratch);
}  // namespace avx512
#endif

}  // namespace qvl
