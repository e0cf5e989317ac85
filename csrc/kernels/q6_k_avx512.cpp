// Q6_K on AVX-512: the decode (row-dot) kernel against ActQ8_K activations, 8 weight rows x 1 or 2
// activation rows per register tile.
// - 64 bytes of ql per vector: their low nibbles are values 0..63 of a 128-value half, their high
//   nibbles values 64..127, so each 64-value vector meets 64 consecutive activation bytes (no
//   rearranging). The two high bits come from 32 qh bytes broadcast to both 256-bit halves, the upper
//   half shifted right by 2 (bit pairs 1 and 3 where the lower half has 0 and 2).
// - levels are used unsigned (0..63) in VNNI dpbusd: one 128-bit lane of its result is one 16-value
//   sub-block (4 products per int32 lane, at most 4 * 63 * 128 = 32256). Two results are packed to int16
//   (exact) and one dpwssd multiplies them by the sub-blocks' scales times the activation's sub-block
//   multipliers (one vpmullw, at most 128 * 16) and accumulates.
// - the offset of 32 is taken off through the activation's 16-value sums times their multipliers (at
//   most 16 * 127 * 16, int16): the sums start at -32 * sum_s scale[s] * m[s] * bsums[s].
// - the integer sums of 8 rows are reduced to one int32 total per row before the conversion to float,
//   so each super-block's total is exactly the scalar reference's; only the float summation differs
//   (one fused multiply-add per super-block).
// Stream order, tiles and prefetches: k_quant_dot_avx512.h (a tile takes one row from each of 8 blocks
// of consecutive rows and prefetches the same bytes of each stream's next row).
// Measured out of cache on 2 threads (2-core VM, read bandwidth ~34 GB/s, quiet machine): 8960x1536
// 29.5-30.6 GB/s (87-90%; the AVX2 kernel 20.8-22.3), 1536x8960 28.4-28.8 (84-85%; AVX2 24.3-25.9).
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include "kernels/blocks.h"
#include "kernels/k_quant_dot_avx512.h"
#include "kernels/kernel_table.h"

namespace qvl::avx512 {
namespace {

constexpr int kTileRows = 8;
constexpr __mmask32 kUpperHalfWords = 0xFFFF0000u;

// Word index vectors placing the 16 int16 scales next to the packs of two dpbusd results: for the
// vectors of half h, 128-bit lane L holds sub-block 8h + L (words 0..3) and 8h + 4 + L (words 4..7).
inline __m512i scale_word_index(int h) {
  alignas(64) int16_t index[32];
  for (int w = 0; w < 32; ++w) index[w] = static_cast<int16_t>(8 * h + (w % 8 < 4 ? 0 : 4) + w / 8);
  return _mm512_load_si512(index);
}

struct Constants {
  __m512i scale_index[2];
  __m512i low_mask = _mm512_set1_epi8(0x0F);
  __m512i high_pairs = _mm512_set1_epi8(0x33);
  Constants() : scale_index{scale_word_index(0), scale_word_index(1)} {}
};

// One activation super-block: the 256 levels as four 64-byte vectors, the 16-value sums times their
// sub-block's multiplier, negated, the multipliers in the lanes of row_sums' scales (per half), and d.
struct ActSuperBlock {
  __m512i qs[4];
  __m256i neg_bsums;
  __m512i multipliers[2];
  float d;
};

inline ActSuperBlock load_act(const ActQ8_K& a, const Constants& k) {
  ActSuperBlock s;
  for (int v = 0; v < 4; ++v) s.qs[v] = _mm512_loadu_si512(a.qs + 64 * v);
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.multipliers));
  const __m256i group_multipliers = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(bytes, bytes));  // group g: m[g / 2]
  const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums));
  s.neg_bsums = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_mullo_epi16(bsums, group_multipliers));
  for (int h = 0; h < 2; ++h) {
    s.multipliers[h] = _mm512_permutexvar_epi16(k.scale_index[h], _mm512_castsi256_si512(group_multipliers));
  }
  s.d = a.d;
  return s;
}

// sums[c] = 16 int32 lanes summing to sum_s scale[s] * m[s] * sum((level - 32) * a) over one row's
// super-block.
template <int C>
inline void row_sums(const BlockQ6_K& block, const ActSuperBlock (&a)[C], const Constants& k, __m512i (&sums)[C]) {
  __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block.scales)));
  // 32 * scale fits int16 (at most 4064), its products with the bsums int32.
  __m256i scales32 = _mm256_slli_epi16(scales, 5);
  for (int c = 0; c < C; ++c) sums[c] = _mm512_zextsi256_si512(_mm256_madd_epi16(scales32, a[c].neg_bsums));
  __m512i wide_scales = _mm512_castsi256_si512(scales);
  for (int h = 0; h < 2; ++h) {
    __m512i ql = _mm512_loadu_si512(block.ql + 64 * h);
    __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.qh + 32 * h)));
    // Bits 0, 1 of each byte: the high bits of the low-nibble values; bits 4, 5: of the high-nibble ones.
    __m512i pairs = _mm512_and_si512(_mm512_mask_srli_epi16(qh, kUpperHalfWords, qh, 2), k.high_pairs);
    // (x & 0x0F) | (y & 0xF0): the 16-bit shifts carry bits across bytes only into bits taken from the other operand.
    __m512i low = _mm512_ternarylogic_epi32(ql, _mm512_slli_epi16(pairs, 4), k.low_mask, 0xE4);
    __m512i high = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), pairs, k.low_mask, 0xE4);
    __m512i sub_block_scales = _mm512_permutexvar_epi16(k.scale_index[h], wide_scales);
    for (int c = 0; c < C; ++c) {
      __m512i low_dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), low, a[c].qs[2 * h]);
      __m512i high_dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), high, a[c].qs[2 * h + 1]);
      __m512i scaled = _mm512_mullo_epi16(sub_block_scales, a[c].multipliers[h]);
      sums[c] = _mm512_dpwssd_epi32(sums[c], _mm512_packs_epi32(low_dots, high_dots), scaled);
    }
  }
}

// Lane r = the integer total of row r (0..7) from the two folds of rows 0..3 and 4..7.
inline __m256i eight_row_totals(__m512i rows03, __m512i rows47) {
  // Lanes [rows03 L0 + L1, rows03 L2 + L3, rows47 L0 + L1, rows47 L2 + L3].
  __m512i pairs = _mm512_add_epi32(_mm512_shuffle_i64x2(rows03, rows47, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_i64x2(rows03, rows47, _MM_SHUFFLE(3, 1, 3, 1)));
  __m512i ordered = _mm512_shuffle_i64x2(pairs, pairs, _MM_SHUFFLE(3, 1, 2, 0));
  return _mm256_add_epi32(_mm512_castsi512_si256(ordered), _mm512_extracti64x4_epi64(ordered, 1));
}

// The fp16 d of 8 rows' super-block at `offset`, as floats.
inline __m256 eight_row_d(const uint8_t* const (&row)[kTileRows], size_t offset) {
  alignas(16) uint16_t d[kTileRows];
  for (int r = 0; r < kTileRows; ++r) d[r] = reinterpret_cast<const BlockQ6_K*>(row[r] + offset)->d;
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d)));
}

// The Q6_K part of a tile for k_quant_dot_avx512.h: the rows in two quads of 4, each quad's sums folded
// into one vector, the two folds then reduced to one int32 total per row.
struct Policy {
  using Block = BlockQ6_K;
  static constexpr int kTileRows = avx512::kTileRows;
  using Acc = __m256;  // lane r: row r
  using Constants = avx512::Constants;

  template <int C>
  static void add_super_block(const uint8_t* const (&row)[kTileRows], size_t offset, size_t ahead,
                              const ActQ8_K* const (&act)[C], const Constants& constants, __m256 (&acc)[C]) {
    ActSuperBlock a[C];
    for (int c = 0; c < C; ++c) a[c] = load_act(*act[c], constants);
    __m512i folds[2][C];
    for (int quad = 0; quad < 2; ++quad) {
      __m512i sums[4][C];
      for (int r = 0; r < 4; ++r) {
        const uint8_t* block = row[4 * quad + r] + offset;
        k_quant::prefetch_block<BlockQ6_K>(block + ahead);
        row_sums<C>(*reinterpret_cast<const BlockQ6_K*>(block), a, constants, sums[r]);
      }
      for (int c = 0; c < C; ++c) {
        folds[quad][c] = k_quant::fold_four_rows(sums[0][c], sums[1][c], sums[2][c], sums[3][c]);
      }
    }
    __m256 d = eight_row_d(row, offset);
    for (int c = 0; c < C; ++c) {
      __m256 totals = _mm256_cvtepi32_ps(eight_row_totals(folds[0][c], folds[1][c]));
      acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a[c].d)), totals, acc[c]);
    }
  }

  static void row_totals(__m256 acc, float* totals) { _mm256_store_ps(totals, acc); }
};

}  // namespace

void add_q6_k(IsaKernels& table) { table.q6_k.dot_tile = k_quant::dot_tile<Policy>; }

}  // namespace qvl::avx512
