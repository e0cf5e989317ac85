// AVX2 + FMA attention of a group of queries over their shared keys: the query heads that share one
// key/value head (grouped-query attention), at a few consecutive positions, are worked on together
// with the queries along the vector lanes (up to kGroupLanes = 3 vectors). Each key and value is then
// loaded once for the whole group instead of once per query, and the scores and the weighted sum of
// values are broadcast-and-FMA products with no horizontal reductions.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "model/avx2_math.h"
#include "model/causal_attention.h"

namespace qvl::avx2 {
namespace {

constexpr int kVectors = kGroupLanes / 8;

// scores_t[(t + r) * kGroupLanes + lane] = keys[t + r] . queries_t[.][lane] for r < R.
template <int R>
inline void score_keys(const float* queries_t, const float* keys, int64_t head_dim, int64_t t, float* scores_t) {
  __m256 acc[R][kVectors];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm256_setzero_ps();
  }
  for (int64_t d = 0; d < head_dim; ++d) {
    __m256 q[kVectors];
    for (int v = 0; v < kVectors; ++v) q[v] = _mm256_loadu_ps(queries_t + d * kGroupLanes + 8 * v);
    for (int r = 0; r < R; ++r) {
      const __m256 k = _mm256_broadcast_ss(keys + (t + r) * head_dim + d);
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm256_fmadd_ps(q[v], k, acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < kVectors; ++v) _mm256_storeu_ps(scores_t + (t + r) * kGroupLanes + 8 * v, acc[r][v]);
  }
}

// Lanes of position p see keys [0, first_keys + p): the lanes that must not see key t (>= first_keys).
inline __m256 hidden_from(const __m256 (&lane_positions)[kVectors], int v, int64_t t, int64_t first_keys) {
  return _mm256_cmp_ps(lane_positions[v], _mm256_set1_ps(static_cast<float>(t - first_keys)), _CMP_LE_OQ);
}

// output_t[d][lane] = sum_t probabilities_t[t][lane] * values[t][d], 8 dimensions at a time.
void weigh_values(const float* probabilities_t, const float* values, int64_t n_keys, int64_t head_dim,
                  float* output_t) {
  for (int64_t d0 = 0; d0 < head_dim; d0 += 8) {
    __m256 acc[8][kVectors];
    for (int dd = 0; dd < 8; ++dd) {
      for (int v = 0; v < kVectors; ++v) acc[dd][v] = _mm256_setzero_ps();
    }
    for (int64_t t = 0; t < n_keys; ++t) {
      __m256 p[kVectors];
      for (int v = 0; v < kVectors; ++v) p[v] = _mm256_loadu_ps(probabilities_t + t * kGroupLanes + 8 * v);
      for (int dd = 0; dd < 8; ++dd) {
        const __m256 value = _mm256_broadcast_ss(values + t * head_dim + d0 + dd);
        for (int v = 0; v < kVectors; ++v) acc[dd][v] = _mm256_fmadd_ps(p[v], value, acc[dd][v]);
      }
    }
    for (int dd = 0; dd < 8; ++dd) {
      for (int v = 0; v < kVectors; ++v) _mm256_storeu_ps(output_t + (d0 + dd) * kGroupLanes + 8 * v, acc[dd][v]);
    }
  }
}

}  // namespace

void attend_query_group(const QueryGroup& g, const float* keys, const float* values, float scale, float* scratch) {
  const int64_t hd = g.head_dim, n_lanes = g.n_positions * g.heads;
  const int64_t n_keys = g.first_keys + g.n_positions - 1;  // what the last position sees
  float* queries_t = scratch;                        // [head_dim][kGroupLanes], later the output
  float* scores_t = scratch + hd * kGroupLanes;      // [n_keys][kGroupLanes]
  // Lane = position * heads + head; row offset of that query (and of its output).
  auto lane_offset = [&](int64_t lane) { return (lane / g.heads) * g.row_stride + (lane % g.heads) * hd; };
  for (int64_t lane = 0; lane < kGroupLanes; ++lane) {
    const float* query = lane < n_lanes ? g.q + lane_offset(lane) : nullptr;
    for (int64_t d = 0; d < hd; ++d) queries_t[d * kGroupLanes + lane] = query ? query[d] * scale : 0.0f;
  }
  int64_t t = 0;
  for (; t + 4 <= n_keys; t += 4) score_keys<4>(queries_t, keys, hd, t, scores_t);
  for (; t < n_keys; ++t) score_keys<1>(queries_t, keys, hd, t, scores_t);

  __m256 lane_positions[kVectors], row_max[kVectors], row_sum[kVectors];
  for (int v = 0; v < kVectors; ++v) {
    alignas(32) float positions[8];
    for (int i = 0; i < 8; ++i) positions[i] = static_cast<float>((8 * v + i) / g.heads);
    lane_positions[v] = _mm256_load_ps(positions);
    row_max[v] = _mm256_set1_ps(-INFINITY);
    row_sum[v] = _mm256_setzero_ps();
  }
  for (t = 0; t < n_keys; ++t) {
    for (int v = 0; v < kVectors; ++v) {
      __m256 s = _mm256_loadu_ps(scores_t + t * kGroupLanes + 8 * v);
      if (t >= g.first_keys) s = _mm256_blendv_ps(s, _mm256_set1_ps(-INFINITY), hidden_from(lane_positions, v, t, g.first_keys));
      row_max[v] = _mm256_max_ps(row_max[v], s);
    }
  }
  for (t = 0; t < n_keys; ++t) {
    for (int v = 0; v < kVectors; ++v) {
      float* slot = scores_t + t * kGroupLanes + 8 * v;
      __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(slot), row_max[v]));
      if (t >= g.first_keys) e = _mm256_andnot_ps(hidden_from(lane_positions, v, t, g.first_keys), e);
      _mm256_storeu_ps(slot, e);
      row_sum[v] = _mm256_add_ps(row_sum[v], e);
    }
  }
  float* output_t = queries_t;
  weigh_values(scores_t, values, n_keys, hd, output_t);
  alignas(32) float inverse_sum[kGroupLanes];
  for (int v = 0; v < kVectors; ++v) _mm256_store_ps(inverse_sum + 8 * v, _mm256_div_ps(_mm256_set1_ps(1.0f), row_sum[v]));
  for (int64_t lane = 0; lane < n_lanes; ++lane) {
    float* out = g.out + lane_offset(lane);
    for (int64_t d = 0; d < hd; ++d) out[d] = output_t[d * kGroupLanes + lane] * inverse_sum[lane];
  }
}

}  // namespace qvl::avx2
