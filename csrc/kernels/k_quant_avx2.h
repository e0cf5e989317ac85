// AVX2 helpers shared by the K-quant kernels (include only from files compiled with AVX2: *_avx2.cpp,
// and q4_k_amx.cpp's panel packer).
#pragma once
#include <cstring>

#include "kernels/avx2_common.h"
#include "kernels/blocks.h"

namespace qvl::avx2 {

// The 12 packed scale bytes of a Q4_K / Q5_K super-block decoded with vector ops: bytes 0..7 = the 6-bit
// scales, 8..15 = the 6-bit mins, in both 128-bit halves (the broadcast load is free, and the per
// sub-block broadcasts below shuffle within halves).
inline __m256i decode_scales_mins(const uint8_t* packed) {
  // Bytes 0..3: sc[0..3] | top bits of sc[4..7]; 4..7: mn[0..3] | top bits of mn[4..7];
  // 8..11: low 4 bits of sc[4..7] | low 4 bits of mn[4..7] << 4. The 16-byte load reads 4 bytes of qs.
  const __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed)));
  const __m256i low_source = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m256i top_source = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(-128, -128, -128, -128, 0, 1, 2, 3, -128, -128, -128, -128, 4, 5, 6, 7));
  const __m256i keep_low = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  const __m256i keep_shifted = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  __m256i low = _mm256_shuffle_epi8(bytes, low_source);
  // srli_epi16 moves the neighbour byte's bits into bits 4..7 (or 6..7) only; the masks drop them.
  __m256i low_bits = _mm256_or_si256(_mm256_and_si256(low, keep_low),
                                     _mm256_and_si256(_mm256_srli_epi16(low, 4), keep_shifted));
  __m256i top_bits = _mm256_and_si256(_mm256_srli_epi16(_mm256_shuffle_epi8(bytes, top_source), 2),
                                      _mm256_set1_epi8(0x30));
  return _mm256_or_si256(low_bits, top_bits);
}

// 16 int16 lanes: the 8 scales, then the 8 mins of a Q4_K / Q5_K super-block.
inline __m256i unpack_scales_mins(const uint8_t* packed) {
  uint32_t word[3];
  std::memcpy(word, packed, sizeof(word));
  const uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, low2 = 0x03030303;
  uint32_t scales_0_3 = word[0] & low6;
  uint32_t mins_0_3 = word[1] & low6;
  uint32_t scales_4_7 = (word[2] & low4) | (((word[0] >> 6) & low2) << 4);
  uint32_t mins_4_7 = ((word[2] >> 4) & low4) | (((word[1] >> 6) & low2) << 4);
  __m128i bytes = _mm_set_epi32(static_cast<int>(mins_4_7), static_cast<int>(mins_0_3), static_cast<int>(scales_4_7),
                                static_cast<int>(scales_0_3));
  return _mm256_cvtepu8_epi16(bytes);
}

// All 16 lanes = int16 lane `index` (0..7) of a vector holding the same 8 int16 in both halves.
inline __m256i broadcast_lane(__m256i both_halves, int index) {
  return _mm256_shuffle_epi8(both_halves, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * index)));
}

// The activation's 16-value sums, paired into the 8 sums of 32 values that a sub-block's min multiplies.
inline __m128i sub_block_sums(const ActQ8_K& a) {
  __m128i first = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums));
  __m128i second = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums + 8));
  return _mm_hadd_epi16(first, second);
}

// The activation's 8 sub-block multipliers (ActQ8_K) as int16 lanes 0..7 of both 128-bit halves.
inline __m256i sub_block_multipliers(const ActQ8_K& a) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.multipliers));
  return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(bytes));
}

// The multiplier of each 16-value group g (sub-block g / 2) as int16 lane g.
inline __m256i group_multipliers(const ActQ8_K& a) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.multipliers));
  return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(bytes, bytes));
}

// 16 where bit `s` of the qh byte is set: bit 4 of the level of sub-block s.
inline __m256i fifth_bit(__m256i qh, int s) {
  const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << s));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit), _mm256_set1_epi8(0x10));
}

}  // namespace qvl::avx2
