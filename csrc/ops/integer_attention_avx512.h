// What the AVX-512 integer attention tiles (vision_attention_int8_avx512.cpp for Int8,
// vision_attention_int16_avx512.cpp for Fast) share: their products, a VNNI multiply-add for
// simd/micro_gemm.h's broadcast product (each 32-bit lane of an accumulator adds the dot product of its
// group of b elements, 4 bytes or 2 int16, with the group of a elements broadcast from one 32-bit word).
// Include only from files compiled for AVX-512.
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

// vpdpwssd: 2 products of s16 and s16 per lane.
struct DpwssdMadd : VnniOperands<int16_t, int16_t> {
  static Acc madd(Acc acc, BVector b, AVector a) { return _mm512_dpwssd_epi32(acc, b, a); }
};

// sums[r * kAttentionQueryTile + lane] = sum over groups p < n_groups of the group dot product of
// rows[r * row_elements + kGroup p ..] with lane's group in lanes[p] (laid out
// [group][kAttentionQueryTile][kGroup]), for r < Rows and Vectors vectors of 16 lanes. The sums go out
// to memory for the caller's conversion to read back: converting straight from the accumulators leaves
// GCC 12 short of registers, and it then spills every accumulator inside the product's loop (the int16
// tile ran slower than the float one that way, the int8 tile a third slower than it does now).
template <typename Madd, int Rows, int Vectors>
void integer_product(const typename Madd::A* rows, int64_t row_elements, const typename Madd::B* lanes,
                     int64_t n_groups, int32_t* sums) {
  __m512i acc[Rows][Vectors];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  simd::broadcast_product<Madd>(rows, row_elements, Madd::kGroup, lanes, kAttentionQueryTile * Madd::kGroup, n_groups,
                                acc);
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) _mm512_storeu_si512(sums + r * kAttentionQueryTile + 16 * v, acc[r][v]);
  }
}

// fn(std::integral_constant<int, V>) with V the vectors of 16 query lanes that `queries` queries fill, at
// most the tile's 3: a short last block of a segment runs with as few as it needs.
template <typename Fn>
void with_query_vectors(int64_t queries, const Fn& fn) {
  static_assert(kAttentionQueryTile == 3 * 16, "a query tile is three vectors of query lanes");
  switch ((queries + 15) / 16) {
    case 1: return fn(std::integral_constant<int, 1>());
    case 2: return fn(std::integral_constant<int, 2>());
    default: return fn(std::integral_constant<int, 3>());
  }
}

}  // namespace qvl::avx512
