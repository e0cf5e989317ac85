// The AVX-512 row-dot kernel (decode) machinery shared by the K-quant types (Q4_K, Q6_K) against ActQ8_K
// activations: the stream order of the rows, the tiles of weight rows x 1 or 2 activation rows, the
// prefetch of each row's next super-block, and the four-row fold. Include only from *_avx512.cpp.
//
// Policy provides:
//   using Block (the super-block); static constexpr int kTileRows (weight rows per tile);
//   using Acc (a tile's float accumulator per activation row) and struct Constants (built once per tile);
//   template <int C> static void add_super_block(const uint8_t* const (&row)[kTileRows], size_t offset,
//       size_t ahead, const ActQ8_K* const (&act)[C], const Constants&, Acc (&acc)[C]): the super-block
//       at byte `offset` of every row against act[c], into acc[c]; each row prefetches its block's bytes
//       `ahead` further on (prefetch_block);
//   static void row_totals(Acc acc, float* totals): totals[r] = row r's dot product, for r < kTileRows
//       (totals is aligned to 32 bytes).
#pragma once
#include <immintrin.h>

#include "common/isa.h"
#include "kernels/blocks.h"

namespace qvl::avx512::k_quant {

// Rows 0..3's 16-lane sums folded into one vector whose 128-bit lanes each hold [r0 r1 r2 r3] partials.
inline __m512i fold_four_rows(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
  __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
  __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

// Prefetches one super-block into L2, its last byte too: a block that is no multiple of 64 bytes
// (144 for Q4_K, 210 for Q6_K) can straddle one line more than its size suggests.
template <typename Block>
inline void prefetch_block(const uint8_t* block) {
  const char* bytes = reinterpret_cast<const char*>(block);
  for (size_t offset = 0; offset < sizeof(Block); offset += 64) _mm_prefetch(bytes + offset, _MM_HINT_T1);
  _mm_prefetch(bytes + sizeof(Block) - 1, _MM_HINT_T1);
}

// out[c * out_stride + r * row_step] = dot(weight row r, activation row c) for r < n_valid, the tile's
// rows being row_step rows apart. A tile of fewer than kTileRows rows repeats its last row in the rest
// (the matrix ends there) and stores only its own. Each row prefetches its block's bytes `ahead` further.
template <typename Policy, int C>
void run_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, float* out, size_t out_stride) {
  constexpr int kRows = Policy::kTileRows;
  const uint8_t* row[kRows];
  for (int r = 0; r < kRows; ++r) row[r] = w + (r < n_valid ? r : n_valid - 1) * row_step * w_stride;
  const typename Policy::Constants constants;
  typename Policy::Acc acc[C] = {};
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const ActQ8_K* a[C];
    for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const ActQ8_K*>(act + c * act_stride) + b;
    Policy::template add_super_block<C>(row, b * sizeof(typename Policy::Block), ahead, a, constants, acc);
  }
  for (int c = 0; c < C; ++c) {
    alignas(32) float totals[kRows];
    Policy::row_totals(acc[c], totals);
    for (int r = 0; r < n_valid; ++r) out[c * out_stride + r * row_step] = totals[r];
  }
}

template <typename Policy>
void run_rows(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  int64_t j = 0;
  for (; j + 2 <= n_act; j += 2) {
    run_tile<Policy, 2>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride,
                        out + j * out_stride, out_stride);
  }
  if (j < n_act) {
    run_tile<Policy, 1>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride,
                        out + j * out_stride, out_stride);
  }
}

// As in block32_dot_avx512.h: the rows are cut into kTileRows streams of consecutive rows and a tile
// takes row t of every stream, so each stream is read in address order and the L2 streamer can follow
// it (adjacent short rows read side by side leave it little to lock on to, and software prefetches
// alone cannot keep enough lines in flight). Each row prefetches its stream's bytes kStreamPrefetchBytes
// further on: a fixed distance rather than the next row, which at k = 8960 (5-7 KB) keeps too much in
// flight (out of cache on 2 threads, three runs: 1536x8960 Q6_K 86-87% -> 95-96% of read bandwidth,
// Q4_K 79-84% -> 83-84%; 8960x1536 unchanged). The n_rows % kTileRows rows left run as one tile of
// adjacent rows (prefetching the rows after it, past the matrix: prefetches do not fault).
constexpr size_t kStreamPrefetchBytes = 1024;

// With common/isa.h's decode_tiles_adjacent_rows (AMD), tiles of kTileRows adjacent rows instead, each
// row prefetching the next tile's block. The streams above were measured on matrices of 7-8 MB, which a
// 32 MB L3 holds; out of memory on the Zen 5 VM (2 threads, one process, the two orders alternating)
// adjacent tiles read Q4_K 71680x3072 at 32.1-33.7 GB/s against 23.5-24.6, Q6_K 151936x1536 (an LM
// head) 33.7-34.0 against 23.0-23.3; in a later run at a higher bandwidth of the host 46.4-46.8 against
// 29.8-30.3 and 41.7-42.6 against 30.1-30.6, where Q8_0's block32 kernel read at 49-52 in either order
// (so it keeps its streams). Whole-model decode, 2B shape Q4_K_M: 37-45 -> 50-51 tok/s in one pair of
// runs, 31-43 -> 35-49 in another. Other vendors keep the streams: not measured here.
template <typename Policy>
void dot_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
              int64_t n_act, float* out, size_t out_stride) {
  constexpr int kRows = Policy::kTileRows;
  if (decode_tiles_adjacent_rows()) {
    for (int64_t r = 0; r < n_rows; r += kRows) {
      const int n_valid = static_cast<int>(n_rows - r < kRows ? n_rows - r : kRows);
      run_rows<Policy>(k, w + r * w_stride, w_stride, 1, n_valid, kRows * w_stride, act, act_stride, n_act, out + r,
                       out_stride);
    }
    return;
  }
  const int64_t stream_rows = n_rows / kRows;
  for (int64_t r = 0; r < stream_rows; ++r) {
    run_rows<Policy>(k, w + r * w_stride, w_stride, stream_rows, kRows, kStreamPrefetchBytes, act, act_stride, n_act, out + r,
                     out_stride);
  }
  if (const int rest = static_cast<int>(n_rows % kRows); rest > 0) {
    const int64_t r = stream_rows * kRows;
    run_rows<Policy>(k, w + r * w_stride, w_stride, 1, rest, rest * w_stride, act, act_stride, n_act, out + r,
                     out_stride);
  }
}

}  // namespace qvl::avx512::k_quant
