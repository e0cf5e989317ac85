// Helpers shared by the AVX2 kernel files (include only from *_avx2.cpp, built with -mavx2 -mfma -mf16c).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/tile_loop.h"

namespace qvl::avx2 {

inline float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 8 int32 sums of adjacent products of unsigned u (0..127 in practice) and signed s bytes.
inline __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// 16 packed bytes -> 32 values: the low nibbles (values 0..15) then the high nibbles (values 16..31).
// The bytes are loaded into both halves and only the high half shifted, so the split costs one shift
// and one and (the broadcast load is a plain load) instead of two of each plus an insert across halves.
inline __m256i split_nibbles(const uint8_t* packed) {
  __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed)));
  __m256i shifted = _mm256_srlv_epi32(bytes, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
  return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
}

// Byte i = 0xFF where bit i of `bits` is set, else 0.
inline __m256i bits_to_bytes(uint32_t bits) {
  __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                                       _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                         0x0101010101010101, 0x0000000000000000));
  const __m256i bit_of_byte = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_of_byte), bit_of_byte);
}

// out[0..15] = level * scale + offset for 16 int8 levels: a product, then a sum, each rounded (the
// strict_fp.h pragma keeps them from fusing), which is how numpy computes gguf-py's dequantization.
// Types without an offset pass -0.0f: adding negative zero changes no value, not even a -0.
inline void store_levels16(__m128i levels, float scale, float offset, float* out) {
  const __m256 scale_v = _mm256_set1_ps(scale), offset_v = _mm256_set1_ps(offset);
  __m256 first = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(levels));
  __m256 second = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(levels, 8)));
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_mul_ps(first, scale_v), offset_v));
  _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_mul_ps(second, scale_v), offset_v));
}

inline void store_levels32(__m256i levels, float scale, float offset, float* out) {
  store_levels16(_mm256_castsi256_si128(levels), scale, offset, out);
  store_levels16(_mm256_extracti128_si256(levels, 1), scale, offset, out + 16);
}

// Prefetches the bytes kStreamPrefetchBytes past block b of `row`: the row-dot kernels run in stream
// order (tile_loop.h), so those bytes are the same stream's, due a little later. Blocks smaller than a
// line prefetch one line each, unchecked (a prefetch of a line already on its way costs one uop; testing
// for a line start cost four and measured no better: AVX2 Q4_0 / Q8_0 out of cache 72-76% / 90-93% of
// read bandwidth with the test, 71-79% / 92-97% without); blocks larger all their lines and their last
// byte (a block can straddle one more line than its size suggests). Called between the rows' work, the
// prefetches come a few at a time rather than in bursts; without them the same kernels stream at 57% /
// 77-83%. Into L2 (T1), not L1: measured out of cache on 2 threads, T1 streams 5-20% faster than T0 (an
// L1 prefetch that misses to memory holds one of the core's few L1 fill buffers for the whole trip).
constexpr size_t kStreamPrefetchBytes = 1024;

template <size_t BlockBytes>
inline void prefetch_ahead(const uint8_t* row, int64_t b) {
  const char* block = reinterpret_cast<const char*>(row + b * BlockBytes + kStreamPrefetchBytes);
  if constexpr (BlockBytes < 64) {
    _mm_prefetch(block, _MM_HINT_T1);
  } else {
    for (size_t offset = 0; offset < BlockBytes; offset += 64) _mm_prefetch(block + offset, _MM_HINT_T1);
    _mm_prefetch(block + BlockBytes - 1, _MM_HINT_T1);
  }
}

// Writes out[c * out_stride + r] = horizontal sum of acc[r][c].
template <int R, int C>
inline void store_sums(const __m256 (&acc)[R][C], float* out, size_t out_stride) {
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) out[c * out_stride + r] = horizontal_sum(acc[r][c]);
  }
}

}  // namespace qvl::avx2
