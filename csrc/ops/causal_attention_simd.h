// The decoder's causal attention for a vector type V (simd/vec_*.h): a group of queries over their
// shared keys. The query heads that share one key/value head (grouped-query attention), at a few
// consecutive positions, are worked on together with the queries along the vector lanes (up to
// Vectors vectors), so each key and value is loaded once for the whole group instead of once per
// query, and the scores and the weighted sum of values are broadcast products (simd/micro_gemm.h)
// with no horizontal reductions. Each lane's arithmetic is the same on every vector width, in the
// same order, so the avx2 and avx512 kernels give the same bits. No intrinsics here.
//
// Measured on the 2-core VM (avx512: 3 vectors of 16 lanes, 8 keys per step), one layer of a 512-token
// prompt at Qwen2-VL-2B's shape (12 heads on 2 key/value heads, head_dim 128): 9.7 ms on avx2 -> 5.0
// ms on one thread, 5.2 -> 2.8 ms on two. That is the FMA count of the causal product at full width,
// so the kernel is compute bound: 32 lanes (5 positions of 6 heads) took 6.3 ms, and summing the values
// in L1-sized key blocks gained nothing, as the keys and values of a head (256 KB each at 512
// positions) stream from L2 fast enough without prefetching.
#pragma once
#include <cmath>
#include <cstdint>

#include "ops/attention_tiles.h"
#include "simd/micro_gemm.h"
#include "simd/vec_math.h"

namespace qvl::simd {

// KeyRows keys are scored, and Dims value dimensions summed, per step of the register tile.
template <typename V, int MaxVectors, int KeyRows, int Dims>
struct CausalGroup {
  static constexpr int64_t kLanes = V::kLanes * MaxVectors;  // the queries one group may hold
  static_assert(kLanes <= kMaxCausalGroupLanes, "scratch is sized for kMaxCausalGroupLanes");
  using F = typename V::F;

  // Which position each lane of a group holds, and so which keys it sees.
  template <int Vectors>
  struct Visibility {
    F positions[Vectors];
    int64_t first_keys;
    // Lanes of position p see keys [0, first_keys + p): the lanes of vector v that see key t.
    typename V::Mask sees(int v, int64_t t) const {
      return V::greater(positions[v], V::set1(static_cast<float>(t - first_keys)));
    }
    F visible(F x, F hidden, int v, int64_t t) const { return t < first_keys ? x : V::select(sees(v, t), x, hidden); }
  };

  // scores_t[(t + r) * kLanes + lane] = keys[t + r] . queries_t[.][lane] for r < R, hidden lanes set
  // to -inf; row_max takes the new scores in.
  template <int Vectors, int R>
  static void score_keys(const float* queries_t, const float* keys, int64_t head_dim, int64_t t,
                         const Visibility<Vectors>& visibility, float* scores_t, F (&row_max)[Vectors]) {
    F acc[R][Vectors];
    zero_tile<V>(acc);
    broadcast_product<FloatMadd<V>>(keys + t * head_dim, head_dim, 1, queries_t, kLanes, head_dim, acc);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < Vectors; ++v) {
        const F s = visibility.visible(acc[r][v], V::set1(-INFINITY), v, t + r);
        row_max[v] = V::max(row_max[v], s);
        V::store(scores_t + (t + r) * kLanes + V::kLanes * v, s);
      }
    }
  }

  // output_t[d0 + dd][lane] = sum_t probabilities_t[t][lane] * values[t][d0 + dd] for dd < D.
  template <int Vectors, int D>
  static void weigh_values(const float* probabilities_t, const float* values, int64_t n_keys, int64_t head_dim,
                           int64_t d0, float* output_t) {
    F acc[D][Vectors];
    zero_tile<V>(acc);
    broadcast_product<FloatMadd<V>>(values + d0, 1, head_dim, probabilities_t, kLanes, n_keys, acc);
#pragma GCC unroll 8
    for (int dd = 0; dd < D; ++dd) {
#pragma GCC unroll 8
      for (int v = 0; v < Vectors; ++v) V::store(output_t + (d0 + dd) * kLanes + V::kLanes * v, acc[dd][v]);
    }
  }

  // A single position's heads (a decoded token): out[h][d0 + ..] = sum_t probabilities_t[t][first_head
  // + h] * values[t][d0 + ..] for h < Heads and DimVectors vectors of value dimensions, with the dimensions
  // along the lanes, so every lane is useful however few heads share the key/value head (weigh_values
  // puts the heads along the lanes: 2 of 16 for Qwen3-VL-2B's groups). Each lane sums over t in
  // weigh_values' order, so the results are the same bits.
  static constexpr int kDimVectors = V::kLanes >= 16 ? 4 : 2;
  static constexpr int kMaxHeadRows = 4;
  template <int Heads>
  static void weigh_values_along_dims(const float* probabilities_t, const float* values, int64_t n_keys,
                                      int64_t head_dim, int64_t first_head, const float* inverse_sum,
                                      const QueryGroup& g) {
    constexpr int64_t kDims = int64_t{V::kLanes} * kDimVectors;
    for (int64_t d0 = 0; d0 < head_dim; d0 += kDims) {
      F acc[Heads][kDimVectors];
      zero_tile<V>(acc);
      broadcast_product<FloatMadd<V>>(probabilities_t + first_head, 1, kLanes, values + d0, head_dim, n_keys, acc);
#pragma GCC unroll 4
      for (int h = 0; h < Heads; ++h) {
        const F inverse = V::set1(inverse_sum[first_head + h]);
        float* out = g.out + (first_head + h) * head_dim + d0;
#pragma GCC unroll 4
        for (int v = 0; v < kDimVectors; ++v) V::store(out + V::kLanes * v, V::mul(acc[h][v], inverse));
      }
    }
  }

  static void weigh_values_of_heads(const float* probabilities_t, const float* values, int64_t n_keys,
                                    const float* inverse_sum, const QueryGroup& g) {
    int64_t h = 0;
    for (; h + kMaxHeadRows <= g.heads; h += kMaxHeadRows) {
      weigh_values_along_dims<kMaxHeadRows>(probabilities_t, values, n_keys, g.head_dim, h, inverse_sum, g);
    }
    switch (g.heads - h) {
      case 3: return weigh_values_along_dims<3>(probabilities_t, values, n_keys, g.head_dim, h, inverse_sum, g);
      case 2: return weigh_values_along_dims<2>(probabilities_t, values, n_keys, g.head_dim, h, inverse_sum, g);
      case 1: return weigh_values_along_dims<1>(probabilities_t, values, n_keys, g.head_dim, h, inverse_sum, g);
      default: return;
    }
  }

  // The group on its first Vectors vectors of lanes (the vectors its queries fill: a single decoded
  // token of 6 heads takes one of avx512's three).
  template <int Vectors>
  static void attend_on(const QueryGroup& g, const float* keys, const float* values, float scale, float* scratch) {
    const int64_t hd = g.head_dim, n_lanes = g.n_positions * g.heads;
    const int64_t n_keys = g.first_keys + g.n_positions - 1;  // what the last position sees
    float* queries_t = scratch;               // [head_dim][kLanes], later the output
    float* scores_t = scratch + hd * kLanes;  // [n_keys][kLanes]
    // Lane = position * heads + head; row offset of that query (and of its output).
    auto lane_offset = [&](int64_t lane) { return (lane / g.heads) * g.row_stride + (lane % g.heads) * hd; };
    for (int64_t lane = 0; lane < Vectors * V::kLanes; ++lane) {
      const float* query = lane < n_lanes ? g.q + lane_offset(lane) : nullptr;
      for (int64_t d = 0; d < hd; ++d) queries_t[d * kLanes + lane] = query ? query[d] * scale : 0.0f;
    }
    Visibility<Vectors> visibility;
    visibility.first_keys = g.first_keys;
    F row_max[Vectors], row_sum[Vectors];
    for (int v = 0; v < Vectors; ++v) {
      float positions[V::kLanes];
      for (int i = 0; i < V::kLanes; ++i) positions[i] = static_cast<float>((V::kLanes * v + i) / g.heads);
      visibility.positions[v] = V::load(positions);
      row_max[v] = V::set1(-INFINITY);
      row_sum[v] = V::zero();
    }
    int64_t t = 0;
    for (; t + KeyRows <= n_keys; t += KeyRows) {
      score_keys<Vectors, KeyRows>(queries_t, keys, hd, t, visibility, scores_t, row_max);
    }
    for (; t < n_keys; ++t) score_keys<Vectors, 1>(queries_t, keys, hd, t, visibility, scores_t, row_max);

    // The scores become exp(score - row_max), 0 for hidden lanes, added to row_sum.
    for (t = 0; t < n_keys; ++t) {
      for (int v = 0; v < Vectors; ++v) {
        float* slot = scores_t + t * kLanes + V::kLanes * v;
        const F e = visibility.visible(exp<V>(V::sub(V::load(slot), row_max[v])), V::zero(), v, t);
        V::store(slot, e);
        row_sum[v] = V::add(row_sum[v], e);
      }
    }
    float inverse_sum[kLanes];
    for (int v = 0; v < Vectors; ++v) V::store(inverse_sum + V::kLanes * v, V::div(V::set1(1.0f), row_sum[v]));
    if (g.n_positions == 1 && hd % (V::kLanes * kDimVectors) == 0) {
      weigh_values_of_heads(scores_t, values, n_keys, inverse_sum, g);
      return;
    }
    float* output_t = queries_t;
    int64_t d0 = 0;
    for (; d0 + Dims <= hd; d0 += Dims) weigh_values<Vectors, Dims>(scores_t, values, n_keys, hd, d0, output_t);
    for (; d0 < hd; ++d0) weigh_values<Vectors, 1>(scores_t, values, n_keys, hd, d0, output_t);
    for (int64_t lane = 0; lane < n_lanes; ++lane) {
      float* out = g.out + lane_offset(lane);
      for (int64_t d = 0; d < hd; ++d) out[d] = output_t[d * kLanes + lane] * inverse_sum[lane];
    }
  }

  template <int Vectors = 1>
  static void attend_with(int vectors, const QueryGroup& g, const float* keys, const float* values, float scale,
                          float* scratch) {
    if constexpr (Vectors < MaxVectors) {
      if (vectors > Vectors) return attend_with<Vectors + 1>(vectors, g, keys, values, scale, scratch);
    }
    attend_on<Vectors>(g, keys, values, scale, scratch);
  }

  // The op table's causal_group entry (op_table.h); g holds at most kLanes queries.
  static void attend(const QueryGroup& g, const float* keys, const float* values, float scale, float* scratch) {
    const int vectors = static_cast<int>((g.n_positions * g.heads + V::kLanes - 1) / V::kLanes);
    attend_with(vectors, g, keys, values, scale, scratch);
  }
};

}  // namespace qvl::simd
