// The AVX-512 decode (row-dot) kernel of Q4_K and Q5_K against ActQ8_K, written once over a type's
// level decoder (Levels: the Block, its per-row RowBits and the levels of each 64-byte half of qs),
// 8 weight rows (two groups of 4) x 1 or 2 activation rows per tile. Include only from *_avx512.cpp
// (q4_k_avx512.cpp, q5_k_avx512.cpp). Decode streams the weights once, so the kernel must cost fewer
// instructions per byte than the AVX2 one for the loads to overlap with the work:
// - 64 bytes of qs per vector: their low nibbles are sub-blocks 2j and 2j + 2 (one per 256-bit half),
//   their high nibbles 2j + 1 and 2j + 3. The activation bytes are rearranged to match once per
//   super-block and activation row, and shared by the four weight rows.
// - levels x activations with VNNI (vpdpbusd: 4 products per int32 lane, at most 4 * 15 * 127 = 7620;
//   Q5_K 4 * 31 * 127 = 15748),
//   the low- and high-nibble results packed to int16 (exact), then one vpdpwssd multiplies them by the
//   sub-blocks' scales times the activation's sub-block multipliers (one vpmullw) and accumulates: 4
//   multiply instructions per 128 weight bytes and activation row where maddubs + madd + mullw need 5.
//   (The multipliers cost ~15% in L2 on one thread, 1024x1536: 20 -> 23 us; out of cache, 32768x4096
//   on 1 and 2 threads, no difference beyond the machine's noise.)
// - the four rows' 12 scale bytes are decoded together (one row per 128-bit lane), and the four rows'
//   integer sums are folded into one vector before the conversion to float, as are their min terms.
// The integer sums are those of the scalar reference; only the float summation order differs.
// Measured on Q4_K (2-core VM, read bandwidth ~34 GB/s on 2 threads): in L2 on 1 thread 1024x1536 runs at
// 27-29 GB/s (AVX2: 18-20); out of cache on 2 threads only 5-10% ahead of AVX2 (8960x1536 21-22 vs
// 19-21 GB/s, 1536x8960 23-24 vs 22) with tiles of 4 adjacent rows; tiles of 4 row streams (see
// k_quant_dot_avx512.h) lift that to 28 GB/s (80-81% of read bandwidth) and 25.6-26.2 (73-76%); tiles of
// 8 streams, sharing the rearranged activation between two groups of 4, to 88-93% / 89-94% (three runs;
// 4 streams in the same runs: 83-89% / 80-89%).
#pragma once
#include <immintrin.h>

#include "kernels/avx2_common.h"
#include "kernels/blocks.h"
#include "kernels/k_quant_avx2.h"
#include "kernels/k_quant_dot_avx512.h"

// Levels provides:
//   using Block; struct RowBits (what a row's super-block needs besides qs, loaded once: nothing for
//   Q4_K, Q5_K's fifth bits); static RowBits row_bits(const Block&);
//   static void levels(const Block&, const RowBits&, int h, __m512i& low, __m512i& high): the levels
//   of the h-th 64 bytes of qs: low = sub-blocks 4h (bytes 0..31) and 4h + 2 (32..63), high = 4h + 1
//   and 4h + 3.
namespace qvl::avx512::k_quant_nibbles {


constexpr int kGroupRows = 4;  // the four rows of a head load (one per 128-bit lane)

// Lane pattern of four 128-bit lanes, all alike.
inline __m512i per_lane(__m128i lane) { return _mm512_broadcast_i32x4(lane); }

// The first 16 bytes of block `offset` (d, dmin, the 12 packed scale bytes) of rows 0..3, row r in
// 128-bit lane r.
inline __m512i load_heads(const uint8_t* const* row, size_t offset) {
  auto head = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[r] + offset)); };
  __m512i heads = _mm512_castsi128_si512(head(0));
  heads = _mm512_inserti32x4(heads, head(1), 1);
  heads = _mm512_inserti32x4(heads, head(2), 2);
  return _mm512_inserti32x4(heads, head(3), 3);
}

// Per 128-bit lane (one row's head): bytes 0..7 = the 6-bit scales, 8..15 = the 6-bit mins. Packed bytes
// (after d and dmin, so at 4..15): 4..7 = sc[0..3] | top bits of sc[4..7]; 8..11 = mn[0..3] | top bits
// of mn[4..7]; 12..15 = low 4 bits of sc[4..7] | low 4 bits of mn[4..7] << 4.
inline __m512i decode_scales_mins(__m512i heads) {
  const __m512i low_source = per_lane(_mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i top_source = per_lane(_mm_setr_epi8(-128, -128, -128, -128, 4, 5, 6, 7, -128, -128, -128, -128, 8, 9, 10, 11));
  const __m512i keep_low = per_lane(_mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  const __m512i keep_shifted = per_lane(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  __m512i low = _mm512_shuffle_epi8(heads, low_source);
  // srli_epi16 moves the neighbour byte's bits into bits 4..7 (or 6..7) only; the masks drop them.
  __m512i low_bits = _mm512_or_si512(_mm512_and_si512(low, keep_low),
                                     _mm512_and_si512(_mm512_srli_epi16(low, 4), keep_shifted));
  __m512i top_bits = _mm512_and_si512(_mm512_srli_epi16(_mm512_shuffle_epi8(heads, top_source), 2),
                                      _mm512_set1_epi8(0x30));
  return _mm512_or_si512(low_bits, top_bits);
}

// The fp16 field at half-word `field` (0: d, 1: dmin) of rows 0..3 as floats, lanes [r0 r1 r2 r3] x 4.
inline __m512 four_row_factor(__m512i heads, int field) {
  // Half-words 0, 8, 16, 24 (+ field): the field of each 128-bit lane's row.
  const __m512i source = _mm512_set1_epi64(static_cast<int64_t>(0x0018001000080000ULL + field * 0x0001000100010001ULL));
  __m512i halves = _mm512_permutexvar_epi16(source, heads);
  return _mm512_cvtph_ps(_mm512_castsi512_si256(halves));
}

// The mins of rows 0..3 as int16, transposed so that 128-bit lane j holds sub-blocks 2j and 2j + 1 of
// rows 0..3 (pairs for madd against the activation's sums laid out by spread_sub_block_sums).
inline __m512i transposed_mins(__m512i decoded) {
  const __m512i widen = per_lane(_mm_setr_epi8(8, -128, 9, -128, 10, -128, 11, -128, 12, -128, 13, -128, 14, -128, 15, -128));
  const __m512i transpose = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(transpose, _mm512_shuffle_epi8(decoded, widen));
}

// 128-bit lane j = int16 lanes 2j and 2j + 1 of `eight` (one per sub-block: the activation's sums of 32
// values, or its multipliers), four times: the layout of transposed_mins.
inline __m512i spread_pairs(__m128i eight) {
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  return _mm512_permutexvar_epi32(spread, _mm512_castsi128_si512(eight));
}

// After the pack in row_sums, 128-bit lanes 0, 1 hold sub-blocks 4h (int16 lanes 0..3) and 4h + 1
// (4..7), lanes 2, 3 sub-blocks 4h + 2 and 4h + 3: these indices widen byte s of a 128-bit lane (a
// scale, or a multiplier) to the int16 lanes of sub-block s.
inline __m512i sub_block_lanes(int h) {
  auto pattern = [](char s0, char s1) {
    return _mm256_broadcastsi128_si256(_mm_setr_epi8(s0, -128, s0, -128, s0, -128, s0, -128, s1, -128, s1, -128, s1,
                                                     -128, s1, -128));
  };
  const char s = static_cast<char>(4 * h);
  return _mm512_inserti64x4(_mm512_castsi256_si512(pattern(s, s + 1)), pattern(s + 2, s + 3), 1);
}

// One activation super-block in the order of the weight vectors: [low half 0, high half 0, low half 1,
// high half 1], where low half h pairs sub-blocks 4h and 4h + 2, high half h sub-blocks 4h + 1, 4h + 3;
// its sub-block multipliers in the lanes of row_sums' scales (per h) and of transposed_mins, and its
// sums of 32 values in the latter's lanes too.
struct ActLevels {
  __m512i v[4];
  __m512i multipliers[2];
  __m512i min_multipliers;
  __m512i sums;
};

inline __m512i join(const int8_t* first, const int8_t* second) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(avx2::load32(first)), avx2::load32(second), 1);
}

inline ActLevels arrange_activation(const ActQ8_K& a) {
  const __m128i multiplier_bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.multipliers));
  const __m512i every_lane = _mm512_broadcast_i32x4(multiplier_bytes);
  return {{join(a.qs, a.qs + 64), join(a.qs + 32, a.qs + 96), join(a.qs + 128, a.qs + 192),
           join(a.qs + 160, a.qs + 224)},
          {_mm512_shuffle_epi8(every_lane, sub_block_lanes(0)), _mm512_shuffle_epi8(every_lane, sub_block_lanes(1))},
          spread_pairs(_mm_cvtepu8_epi16(multiplier_bytes)),
          spread_pairs(avx2::sub_block_sums(a))};
}

// sums[c] = 16 int32 lanes summing to sum_s sc[s] * m[s] * (levels . activation c) over one row's
// super-block. `scales` holds the row's decoded scale bytes in every 128-bit lane.
template <typename Levels, int C>
inline void row_sums(const typename Levels::Block& block, __m512i scales, const ActLevels (&a)[C],
                     __m512i (&sums)[C]) {
  const typename Levels::RowBits bits = Levels::row_bits(block);
  for (int c = 0; c < C; ++c) sums[c] = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    __m512i low, high;
    Levels::levels(block, bits, h, low, high);
    __m512i sub_block_scales = _mm512_shuffle_epi8(scales, sub_block_lanes(h));
    for (int c = 0; c < C; ++c) {
      __m512i low_dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), low, a[c].v[2 * h]);
      __m512i high_dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), high, a[c].v[2 * h + 1]);
      __m512i scaled = _mm512_mullo_epi16(sub_block_scales, a[c].multipliers[h]);  // sc * m <= 63 * 16
      sums[c] = _mm512_dpwssd_epi32(sums[c], _mm512_packs_epi32(low_dots, high_dots), scaled);
    }
  }
}

// Rows 0..3 of the lanes [r0 r1 r2 r3] x 4 summed.
inline __m128 four_row_totals(__m512 v) {
  __m256 halves = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  return _mm_add_ps(_mm256_castps256_ps128(halves), _mm256_extractf128_ps(halves, 1));
}

// The Q4_K / Q5_K part of a tile for k_quant_dot_avx512.h: two groups of four rows (one head load each)
// sharing the rearranged activation.
template <typename Levels>
struct Policy {
  using Block = typename Levels::Block;
  static constexpr int kGroups = 2;
  static constexpr int kTileRows = kGroups * kGroupRows;
  struct Acc {
    __m512 group[kGroups];  // lanes [r0 r1 r2 r3] x 4 of each group
  };
  struct Constants {};  // none: the compiler hoists this kernel's lookup tables out of the loop itself

  template <int C>
  static void add_super_block(const uint8_t* const (&row)[kTileRows], size_t offset, size_t ahead,
                              const ActQ8_K* const (&act)[C], const Constants&, Acc (&acc)[C]) {
    ActLevels a[C];
    float a_scale[C];
    for (int c = 0; c < C; ++c) {
      a[c] = arrange_activation(*act[c]);
      a_scale[c] = act[c]->d;
    }
    for (int g = 0; g < kGroups; ++g) {
      const uint8_t* const* group = row + g * kGroupRows;
      __m512i heads = load_heads(group, offset);
      __m512i decoded = decode_scales_mins(heads);
      __m512i sums[kGroupRows][C];
      for (int r = 0; r < kGroupRows; ++r) {
        k_quant::prefetch_block<Block>(group[r] + ahead + offset);
        const __m512i row_scales = _mm512_permutexvar_epi32(
            _mm512_add_epi32(_mm512_set1_epi32(4 * r), per_lane(_mm_setr_epi32(0, 1, 2, 3))), decoded);
        row_sums<Levels, C>(*reinterpret_cast<const Block*>(group[r] + offset), row_scales, a, sums[r]);
      }
      __m512i mins = transposed_mins(decoded);
      __m512 d = four_row_factor(heads, 0), dmin = four_row_factor(heads, 1);
      for (int c = 0; c < C; ++c) {
        __m512 a_d = _mm512_set1_ps(a_scale[c]);
        __m512i scaled = k_quant::fold_four_rows(sums[0][c], sums[1][c], sums[2][c], sums[3][c]);
        // mn * m: at most 63 * 16
        __m512i offsets = _mm512_madd_epi16(_mm512_mullo_epi16(mins, a[c].min_multipliers), a[c].sums);
        acc[c].group[g] = _mm512_fmadd_ps(_mm512_mul_ps(d, a_d), _mm512_cvtepi32_ps(scaled), acc[c].group[g]);
        acc[c].group[g] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, a_d), _mm512_cvtepi32_ps(offsets), acc[c].group[g]);
      }
    }
  }

  static void row_totals(const Acc& acc, float* totals) {
    for (int g = 0; g < kGroups; ++g) _mm_store_ps(totals + 4 * g, four_row_totals(acc.group[g]));
  }
};

}  // namespace qvl::avx512::k_quant_nibbles
