#include "model/causal_attention.h"

#include <algorithm>
#include <cmath>

#include "common/isa.h"
#include "model/layers.h"

namespace qvl {

namespace {

// The reference: scores, softmax, weighted sum of values, in plain loops.
void attend_one_query_scalar(const float* query, const float* keys, const float* values, int64_t n_keys, int64_t hd,
                             float scale, float* scores, float* out) {
  float max_score = -INFINITY;
  for (int64_t t = 0; t < n_keys; ++t) {
    scores[t] = dot(query, keys + t * hd, hd) * scale;
    max_score = std::max(max_score, scores[t]);
  }
  float sum = 0.0f;
  for (int64_t t = 0; t < n_keys; ++t) {
    scores[t] = std::exp(scores[t] - max_score);
    sum += scores[t];
  }
  std::fill(out, out + hd, 0.0f);
  for (int64_t t = 0; t < n_keys; ++t) axpy(scores[t], values + t * hd, out, hd);
  scale_in_place(out, 1.0f / sum, hd);
}

// The vectorised kernel for the active ISA and the queries it takes at once; none: the scalar path.
struct GroupKernel {
  void (*attend)(const QueryGroup&, const float* keys, const float* values, float scale, float* scratch) = nullptr;
  int64_t lanes = 0;
};

GroupKernel group_kernel(int64_t group, int64_t head_dim) {
  if (head_dim % 8 != 0) return {};
#if defined(QVL_HAVE_AVX512_BUILD)
  if (runs_avx512_kernels(active_isa()) && group <= kGroupLanesAvx512) {
    return {avx512::attend_query_group, kGroupLanesAvx512};
  }
#endif
#if defined(QVL_HAVE_AVX2_BUILD)
  if (runs_avx2_kernels(active_isa()) && group <= kGroupLanes) return {avx2::attend_query_group, kGroupLanes};
#endif
  return {};
}

}  // namespace

int64_t causal_attention_scratch_floats(int64_t capacity, int64_t head_dim) {
  // A group's scores and its transposed queries, for the widest kernel built in.
  return (capacity + head_dim) * std::max(kGroupLanes, kGroupLanesAvx512);
}

void causal_attention(const float* q, int64_t n, int64_t first, KvCache& cache, int64_t layer, const AttentionShape& shape,
                      float* out, float* scratch, ThreadPool& pool) {
  const int64_t hd = shape.head_dim;
  const int64_t width = shape.n_heads * hd;
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t thread_floats = causal_attention_scratch_floats(cache.capacity(), hd);
  const GroupKernel kernel = group_kernel(group, hd);
  if (kernel.attend) {
    // Tasks: (block of positions, key/value head); a block holds as many positions as fill the lanes.
    const int64_t positions = kernel.lanes / group, n_blocks = (n + positions - 1) / positions;
    pool.run(n_blocks * shape.n_kv_heads, [&](int64_t task, int thread) {
      const int64_t first_row = (task / shape.n_kv_heads) * positions, kv_head = task % shape.n_kv_heads;
      const int64_t offset = first_row * width + kv_head * group * hd;
      QueryGroup queries{q + offset, out + offset, width, std::min(positions, n - first_row), group, hd,
                         first + first_row + 1};
      kernel.attend(queries, cache.keys(layer, kv_head), cache.values(layer, kv_head), scale,
                    scratch + static_cast<int64_t>(thread) * thread_floats);
    });
    return;
  }
  pool.run(n * shape.n_heads, [&](int64_t task, int thread) {
    const int64_t i = task / shape.n_heads, head = task % shape.n_heads;
    attend_one_query_scalar(q + i * width + head * hd, cache.keys(layer, head / group), cache.values(layer, head / group),
                            first + i + 1, hd, scale, scratch + static_cast<int64_t>(thread) * thread_floats,
                            out + i * width + head * hd);
  });
}

}  // namespace qvl
