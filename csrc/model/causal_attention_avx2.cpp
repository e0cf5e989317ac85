// AVX2 + FMA attention of one query over its keys: the scores by dot products, the softmax with a
// vector exp, and the weighted sum of values kept in registers 64 dimensions at a time (an axpy per
// key would load and store the whole output row for every key).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "model/avx2_math.h"

namespace qvl::avx2 {

float dot(const float* a, const float* b, int64_t n);

namespace {

inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// scores[t] = exp(scores[t] - max) in place; returns their sum.
float softmax_numerators(float* scores, int64_t n, float max_score) {
  const __m256 shift = _mm256_set1_ps(max_score);
  __m256 sum = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(scores + t), shift));
    _mm256_storeu_ps(scores + t, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = horizontal_sum(sum);
  for (; t < n; ++t) {
    scores[t] = std::exp(scores[t] - max_score);
    total += scores[t];
  }
  return total;
}

}  // namespace

// out[0..head_dim) = softmax(scale * keys q) values, keys and values n_keys rows of head_dim floats.
// head_dim must be a multiple of 64. scores: n_keys floats of scratch.
void attend_one_query(const float* query, const float* keys, const float* values, int64_t n_keys, int64_t head_dim,
                      float scale, float* scores, float* out) {
  __m256 running_max = _mm256_set1_ps(-INFINITY);
  int64_t t = 0;
  for (; t + 8 <= n_keys; t += 8) {
    for (int64_t j = 0; j < 8; ++j) scores[t + j] = dot(query, keys + (t + j) * head_dim, head_dim) * scale;
    running_max = _mm256_max_ps(running_max, _mm256_loadu_ps(scores + t));
  }
  float max_score = horizontal_max(running_max);
  for (; t < n_keys; ++t) {
    scores[t] = dot(query, keys + t * head_dim, head_dim) * scale;
    max_score = std::max(max_score, scores[t]);
  }
  const __m256 inv_sum = _mm256_set1_ps(1.0f / softmax_numerators(scores, n_keys, max_score));
  for (int64_t d = 0; d < head_dim; d += 64) {
    __m256 acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
    const float* column = values + d;
    for (int64_t key = 0; key < n_keys; ++key, column += head_dim) {
      const __m256 p = _mm256_broadcast_ss(scores + key);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) acc[r] = _mm256_fmadd_ps(p, _mm256_loadu_ps(column + 8 * r), acc[r]);
    }
    for (int r = 0; r < 8; ++r) _mm256_storeu_ps(out + d + 8 * r, _mm256_mul_ps(acc[r], inv_sum));
  }
}

}  // namespace qvl::avx2
