// Q6_K on AVX-512: the decode (row-dot) kernel against ActQ8_K activations, 8 weight rows x 1 or 2
// activation rows per register tile.
// - 64 bytes of ql per vector: their low nibbles are values 0..63 of a 128-value half, their high
//   nibbles values 64..127, so each 64-value vector meets 64 consecutive activation bytes (no
//   rearranging). The two high bits come from 32 qh bytes broadcast to both 256-bit halves, the upper
//   half shifted right by 2 (bit pairs 1 and 3 where the lower half has 0 and 2).
// - levels are used unsigned (0..63) in VNNI dpbusd: one 128-bit lane of its result is one 16-value
//   sub-block (4 products per int32 lane, at most 4 * 63 * 128 = 32256). Two results are packed to int16
//   (exact) and one dpwssd multiplies them by the sub-blocks' scales and accumulates.
// - the offset of 32 is taken off through the activation's 16-value sums: the sums start at
//   -32 * sum_s scale[s] * bsums[s].
// - the integer sums of 8 rows are reduced to one int32 total per row before the conversion to float,
//   so each super-block's total is exactly the scalar reference's; only the float summation differs
//   (one fused multiply-add per super-block).
// Stream order as in q4_0_avx512.cpp: a tile takes one row from each of 8 blocks of consecutive rows
// and prefetches the same bytes of each stream's next row.
// Measured out of cache on 2 threads (2-core VM, read bandwidth ~34 GB/s, quiet machine): 8960x1536
// 29.5-30.6 GB/s (87-90%; the AVX2 kernel 20.8-22.3), 1536x8960 28.4-28.8 (84-85%; AVX2 24.3-25.9).
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include "kernels/blocks.h"
#include "kernels/kernel_table.h"

namespace qvl::avx512 {
namespace {

constexpr int kTileRows = 8;
constexpr __mmask32 kUpperHalfWords = 0xFFFF0000u;

// One activation super-block: the 256 levels as four 64-byte vectors, the bsums negated (int16: at
// most 16 * 127 in magnitude) and d.
struct ActSuperBlock {
  __m512i qs[4];
  __m256i neg_bsums;
  float d;
};

inline ActSuperBlock load_act(const ActQ8_K& a) {
  ActSuperBlock s;
  for (int v = 0; v < 4; ++v) s.qs[v] = _mm512_loadu_si512(a.qs + 64 * v);
  s.neg_bsums = _mm256_sub_epi16(_mm256_setzero_si256(),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums)));
  s.d = a.d;
  return s;
}

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

// sums[c] = 16 int32 lanes summing to sum_s scale[s] * sum((level - 32) * a) over one row's super-block.
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
      sums[c] = _mm512_dpwssd_epi32(sums[c], _mm512_packs_epi32(low_dots, high_dots), sub_block_scales);
    }
  }
}

// Rows 0..3's 16-lane sums folded into one vector whose 128-bit lanes each hold [r0 r1 r2 r3] partials.
inline __m512i fold_four_rows(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
  __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
  __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
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

// All lines of the super-block at `block` (210 bytes: up to 5 lines).
inline void prefetch_block(const uint8_t* block) {
  const char* bytes = reinterpret_cast<const char*>(block);
  for (size_t offset = 0; offset < sizeof(BlockQ6_K); offset += 64) _mm_prefetch(bytes + offset, _MM_HINT_T1);
  _mm_prefetch(bytes + sizeof(BlockQ6_K) - 1, _MM_HINT_T1);
}

// One tile of 8 weight rows, row_step rows apart (the first n_valid real; the rest repeat the last
// real row), and C activation rows. Super-block b of each row prefetches the same bytes `ahead` further.
template <int C>
void run_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, float* out, size_t out_stride) {
  const uint8_t* row[kTileRows];
  for (int r = 0; r < kTileRows; ++r) row[r] = w + (r < n_valid ? r : n_valid - 1) * row_step * w_stride;
  const Constants constants;
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const size_t offset = b * sizeof(BlockQ6_K);
    ActSuperBlock a[C];
    for (int c = 0; c < C; ++c) a[c] = load_act(reinterpret_cast<const ActQ8_K*>(act + c * act_stride)[b]);
    __m512i folds[2][C];
    for (int quad = 0; quad < 2; ++quad) {
      __m512i sums[4][C];
      for (int r = 0; r < 4; ++r) {
        const uint8_t* block = row[4 * quad + r] + offset;
        prefetch_block(block + ahead);
        row_sums<C>(*reinterpret_cast<const BlockQ6_K*>(block), a, constants, sums[r]);
      }
      for (int c = 0; c < C; ++c) folds[quad][c] = fold_four_rows(sums[0][c], sums[1][c], sums[2][c], sums[3][c]);
    }
    __m256 d = eight_row_d(row, offset);
    for (int c = 0; c < C; ++c) {
      __m256 totals = _mm256_cvtepi32_ps(eight_row_totals(folds[0][c], folds[1][c]));
      acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a[c].d)), totals, acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) {
    alignas(32) float sums[kTileRows];
    _mm256_store_ps(sums, acc[c]);
    for (int r = 0; r < n_valid; ++r) out[c * out_stride + r * row_step] = sums[r];
  }
}

void run_rows(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  int64_t j = 0;
  for (; j + 2 <= n_act; j += 2) {
    run_tile<2>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride, out + j * out_stride,
                out_stride);
  }
  if (j < n_act) {
    run_tile<1>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride, out + j * out_stride,
                out_stride);
  }
}

// The rows are cut into 8 streams of consecutive rows and a tile takes row t of every stream, so each
// stream is read in address order and the L2 streamer can follow it (see q4_0_avx512.cpp); the
// prefetches fetch the same bytes of each stream's next row. The n_rows % 8 rows left run as one tile
// of adjacent rows.
void dot_tile_q6_k(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
                   int64_t n_act, float* out, size_t out_stride) {
  int64_t stream_rows = n_rows / kTileRows;
  for (int64_t r = 0; r < stream_rows; ++r) {
    run_rows(k, w + r * w_stride, w_stride, stream_rows, kTileRows, w_stride, act, act_stride, n_act, out + r,
             out_stride);
  }
  if (int rest = static_cast<int>(n_rows % kTileRows); rest > 0) {
    int64_t r = stream_rows * kTileRows;
    run_rows(k, w + r * w_stride, w_stride, 1, rest, rest * w_stride, act, act_stride, n_act, out + r, out_stride);
  }
}

}  // namespace

void add_q6_k(IsaKernels& table) { table.q6_k.dot_tile = dot_tile_q6_k; }

}  // namespace qvl::avx512
