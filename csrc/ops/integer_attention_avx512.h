// The AVX-512 integer attention tile's (vision_attention_int8_avx512.cpp) building blocks: its products,
// VNNI multiply-adds for simd/micro_gemm.h's broadcast product (each 32-bit lane of an accumulator adds
// the dot product of its group of 4 u8 b elements with the 4 s8 a elements broadcast from one 32-bit
// word), the choice of how many vectors of query lanes a tile runs with, the folding of a key block into
// the running output, and the last step, the division by the softmax sums.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/attention_tiles.h"
#include "simd/micro_gemm.h"

namespace qvl::avx512 {

template <typename AElement, typename BElement>
struct VnniOperands {
  using A = AElement;
  using B = BElement;
  using Acc = __m512i;
  using BVector = __m512i;
  using AVector = __m512i;
  static constexpr int64_t kGroup = 4 / sizeof(BElement);  // elements of one operand per 32-bit lane
  static constexpr int64_t kVectorElements = 64 / sizeof(BElement);
  static BVector load_b(const B* b) { return _mm512_loadu_si512(b); }
  static AVector broadcast_a(const A* a) {
    int32_t word;
    std::memcpy(&word, a, sizeof(word));
    return _mm512_set1_epi32(word);
  }
};

// vpdpbusd: 4 products of u8 (b) and s8 (a) per lane.
struct DpbusdMadd : VnniOperands<int8_t, uint8_t> {
  static Acc madd(Acc acc, BVector b, AVector a) { return _mm512_dpbusd_epi32(acc, b, a); }
};

// acc[r][v] = sum over groups p < depth_groups of the group dot of lanes[p][16 v ..] with
// rows[r * row_elements + kGroup p ..]; lanes is laid out [group][kAttentionQueryTile][kGroup].
template <typename Madd, int Rows, int Vectors>
inline void integer_product(const typename Madd::A* rows, int64_t row_elements, const typename Madd::B* lanes,
                            int64_t depth_groups, __m512i (&acc)[Rows][Vectors]) {
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  simd::broadcast_product<Madd>(rows, row_elements, Madd::kGroup, lanes, kAttentionQueryTile * Madd::kGroup,
                                depth_groups, acc);
}

constexpr int64_t kQueryLanes = 16;
constexpr int kMaxQueryVectors = kAttentionQueryTile / kQueryLanes;

// attend(std::integral_constant<int, V>) with as few vectors V of query lanes as n_queries needs (a
// short last block of a segment), up to the whole tile.
template <typename Attend>
inline void with_query_vectors(int64_t n_queries, const Attend& attend) {
  static_assert(kMaxQueryVectors == 3, "a query tile is three vectors of query lanes");
  switch ((n_queries + kQueryLanes - 1) / kQueryLanes) {
    case 1: return attend(std::integral_constant<int, 1>());
    case 2: return attend(std::integral_constant<int, 2>());
    default: return attend(std::integral_constant<int, kMaxQueryVectors>());
  }
}

// output_t[r][lanes] = output_t * correction + acc[r] * value_scales[r] * block_scale, for Rows
// channels: one key block's integer output product folded into the running output (the scratch's
// correction and block_scale come from that block's softmax step).
template <typename Scratch, int Rows, int Vectors>
inline void accumulate_output(const __m512i (&acc)[Rows][Vectors], const float* value_scales, const Scratch& scratch,
                              float* output_t) {
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
    const __m512 value_scale = _mm512_set1_ps(value_scales[r]);
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) {
      float* out = output_t + r * kAttentionQueryTile + kQueryLanes * v;
      const __m512 rescaled =
          _mm512_mul_ps(_mm512_loadu_ps(out), _mm512_loadu_ps(scratch.correction + kQueryLanes * v));
      const __m512 scale = _mm512_mul_ps(value_scale, _mm512_loadu_ps(scratch.block_scale + kQueryLanes * v));
      _mm512_storeu_ps(out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][v]), scale, rescaled));
    }
  }
}

// out[i] = output_t[.][i] / row_sum[i] for every query of the tile.
template <typename Tile, typename Scratch>
inline void store_normalised_output(const Tile& tile, const Scratch& scratch) {
  for (int64_t i = 0; i < tile.n_queries; ++i) {
    const float inverse_sum = 1.0f / scratch.row_sum[i];
    for (int64_t c = 0; c < tile.head_dim; ++c) {
      tile.out[i * tile.row_stride + c] = scratch.output_t[c * kAttentionQueryTile + i] * inverse_sum;
    }
  }
}

}  // namespace qvl::avx512
