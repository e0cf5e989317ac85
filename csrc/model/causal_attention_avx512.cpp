// AVX-512 attention of a group of queries over their shared keys: the AVX2 kernel's scheme (the query
// heads sharing one key/value head, at consecutive positions, along the vector lanes) with 16-lane
// vectors, up to kGroupLanesAvx512 = 48 queries (3 vectors) per group. The 32 registers hold 8 keys x
// 3 vectors of score accumulators, so each key element loaded feeds 48 queries instead of 24.
// Each lane's arithmetic is the AVX2 kernel's, in the same order, so the results are bit-identical.
//
// Measured on the 2-core VM, one layer of a 512-token prompt at Qwen2-VL-2B's shape (12 heads on 2
// key/value heads, head_dim 128): 9.7 -> 5.0 ms on one thread (AVX2 -> this), 5.2 -> 2.8 ms on two.
// That is the FMA count of the causal product at full width, so the kernel is compute bound: 32 lanes
// (5 positions of 6 heads) took 6.3 ms, and summing the values in L1-sized key blocks gained nothing,
// as the keys and values of a head (256 KB each at 512 positions) stream from L2 fast enough without
// prefetching. In a 512-token Q4_K_M prefill attention went from 7.1% to 4.1% of the samples.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "model/avx512_math.h"
#include "model/causal_attention.h"

namespace qvl::avx512 {
namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t L = kGroupLanesAvx512;  // floats per row of the transposed scratch arrays
constexpr int kMaxVectors = static_cast<int>(L / kLanes);
constexpr int kKeyRows = 8;  // keys scored together: 8 x 3 accumulators + 3 queries + 1 key <= 32 registers
constexpr int kDims = 8;     // value dimensions summed together, for the same register budget

// Which position each lane of a group holds, and so which keys it sees.
template <int V>
struct CausalMask {
  __m512 positions[V];
  int64_t first_keys;
  // Lanes of position p see keys [0, first_keys + p): the lanes that see key t.
  __mmask16 sees(int v, int64_t t) const {
    if (t < first_keys) return 0xFFFF;
    return _mm512_cmp_ps_mask(positions[v], _mm512_set1_ps(static_cast<float>(t - first_keys)), _CMP_GT_OQ);
  }
};

// scores_t[(t + r) * L + lane] = keys[t + r] . queries_t[.][lane] for r < R, hidden lanes set to -inf;
// row_max takes the new scores in.
template <int V, int R>
inline void score_keys(const float* queries_t, const float* keys, int64_t head_dim, int64_t t,
                       const CausalMask<V>& mask, float* scores_t, __m512 (&row_max)[V]) {
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const float* key_rows = keys + t * head_dim;
  for (int64_t d = 0; d < head_dim; ++d) {
    __m512 q[V];
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) q[v] = _mm512_loadu_ps(queries_t + d * L + kLanes * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 k = _mm512_set1_ps(key_rows[r * head_dim + d]);
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(q[v], k, acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) {
      const __m512 s = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), mask.sees(v, t + r), acc[r][v]);
      row_max[v] = _mm512_max_ps(row_max[v], s);
      _mm512_storeu_ps(scores_t + (t + r) * L + kLanes * v, s);
    }
  }
}

// The scores become exp(score - row_max), 0 for hidden lanes, added to row_sum.
template <int V>
void exponentiate(float* scores_t, int64_t n_keys, const CausalMask<V>& mask, const __m512 (&row_max)[V],
                  __m512 (&row_sum)[V]) {
  for (int64_t t = 0; t < n_keys; ++t) {
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) {
      float* slot = scores_t + t * L + kLanes * v;
      const __m512 e = _mm512_maskz_mov_ps(mask.sees(v, t), exp_ps(_mm512_sub_ps(_mm512_loadu_ps(slot), row_max[v])));
      _mm512_storeu_ps(slot, e);
      row_sum[v] = _mm512_add_ps(row_sum[v], e);
    }
  }
}

// output_t[d][lane] = sum_t probabilities_t[t][lane] * values[t][d], 8 dimensions at a time.
template <int V>
void weigh_values(const float* probabilities_t, const float* values, int64_t n_keys, int64_t head_dim,
                  float* output_t) {
  for (int64_t d0 = 0; d0 < head_dim; d0 += kDims) {
    __m512 acc[kDims][V];
#pragma GCC unroll 8
    for (int dd = 0; dd < kDims; ++dd) {
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) acc[dd][v] = _mm512_setzero_ps();
    }
    for (int64_t t = 0; t < n_keys; ++t) {
      __m512 p[V];
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) p[v] = _mm512_loadu_ps(probabilities_t + t * L + kLanes * v);
#pragma GCC unroll 8
      for (int dd = 0; dd < kDims; ++dd) {
        const __m512 value = _mm512_set1_ps(values[t * head_dim + d0 + dd]);
#pragma GCC unroll 3
        for (int v = 0; v < V; ++v) acc[dd][v] = _mm512_fmadd_ps(p[v], value, acc[dd][v]);
      }
    }
#pragma GCC unroll 8
    for (int dd = 0; dd < kDims; ++dd) {
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(output_t + (d0 + dd) * L + kLanes * v, acc[dd][v]);
    }
  }
}

// The group on its first V vectors of lanes (V = the vectors its queries fill: a single decoded token
// of 6 heads takes one, not three).
template <int V>
void attend(const QueryGroup& g, const float* keys, const float* values, float scale, float* scratch) {
  const int64_t hd = g.head_dim, n_lanes = g.n_positions * g.heads;
  const int64_t n_keys = g.first_keys + g.n_positions - 1;  // what the last position sees
  float* queries_t = scratch;              // [head_dim][L], later the output
  float* scores_t = scratch + hd * L;      // [n_keys][L]
  // Lane = position * heads + head; row offset of that query (and of its output).
  auto lane_offset = [&](int64_t lane) { return (lane / g.heads) * g.row_stride + (lane % g.heads) * hd; };
  for (int64_t lane = 0; lane < V * kLanes; ++lane) {
    const float* query = lane < n_lanes ? g.q + lane_offset(lane) : nullptr;
    for (int64_t d = 0; d < hd; ++d) queries_t[d * L + lane] = query ? query[d] * scale : 0.0f;
  }
  CausalMask<V> mask;
  mask.first_keys = g.first_keys;
  __m512 row_max[V], row_sum[V];
  for (int v = 0; v < V; ++v) {
    alignas(64) float positions[kLanes];
    for (int i = 0; i < kLanes; ++i) positions[i] = static_cast<float>((kLanes * v + i) / g.heads);
    mask.positions[v] = _mm512_load_ps(positions);
    row_max[v] = _mm512_set1_ps(-INFINITY);
    row_sum[v] = _mm512_setzero_ps();
  }
  int64_t t = 0;
  for (; t + kKeyRows <= n_keys; t += kKeyRows) {
    score_keys<V, kKeyRows>(queries_t, keys, hd, t, mask, scores_t, row_max);
  }
  for (; t < n_keys; ++t) score_keys<V, 1>(queries_t, keys, hd, t, mask, scores_t, row_max);

  exponentiate(scores_t, n_keys, mask, row_max, row_sum);
  float* output_t = queries_t;
  weigh_values<V>(scores_t, values, n_keys, hd, output_t);

  alignas(64) float inverse_sum[L];
  for (int v = 0; v < V; ++v) {
    _mm512_store_ps(inverse_sum + kLanes * v, _mm512_div_ps(_mm512_set1_ps(1.0f), row_sum[v]));
  }
  for (int64_t lane = 0; lane < n_lanes; ++lane) {
    float* out = g.out + lane_offset(lane);
    for (int64_t d = 0; d < hd; ++d) out[d] = output_t[d * L + lane] * inverse_sum[lane];
  }
}

}  // namespace

void attend_query_group(const QueryGroup& g, const float* keys, const float* values, float scale, float* scratch) {
  switch ((g.n_positions * g.heads + kLanes - 1) / kLanes) {
    case 1: return attend<1>(g, keys, values, scale, scratch);
    case 2: return attend<2>(g, keys, values, scale, scratch);
    default: return attend<kMaxVectors>(g, keys, values, scale, scratch);
  }
}

}  // namespace qvl::avx512
