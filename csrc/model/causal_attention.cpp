#include "model/causal_attention.h"

#include <algorithm>
#include <cmath>

#include "common/isa.h"
#include "model/layers.h"

namespace qvl {

#if defined(QVL_HAVE_AVX2_BUILD)
namespace avx2 {
void attend_one_query(const float* query, const float* keys, const float* values, int64_t n_keys, int64_t head_dim,
                      float scale, float* scores, float* out);
}  // namespace avx2
#endif

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

}  // namespace

void causal_attention(const float* q, int64_t n, int64_t first, KvCache& cache, int64_t layer, const AttentionShape& shape,
                      float* out, float* scratch, ThreadPool& pool) {
  const int64_t hd = shape.head_dim;
  const int64_t width = shape.n_heads * hd;
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  [[maybe_unused]] const bool use_avx2 = runs_avx2_kernels(active_isa()) && hd % 64 == 0;
  pool.run(n * shape.n_heads, [&](int64_t task, int thread) {
    const int64_t i = task / shape.n_heads, head = task % shape.n_heads;
    const int64_t n_keys = first + i + 1;
    const float* query = q + i * width + head * hd;
    const float* keys = cache.keys(layer, head / group);
    const float* values = cache.values(layer, head / group);
    float* scores = scratch + static_cast<int64_t>(thread) * cache.capacity();
    float* result = out + i * width + head * hd;
#if defined(QVL_HAVE_AVX2_BUILD)
    if (use_avx2) return avx2::attend_one_query(query, keys, values, n_keys, hd, scale, scores, result);
#endif
    attend_one_query_scalar(query, keys, values, n_keys, hd, scale, scores, result);
  });
}

}  // namespace qvl
