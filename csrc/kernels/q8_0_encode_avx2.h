// The Q8_0 weight encoding of one block in AVX2, byte for byte as the scalar encoder of q8_0.cpp
// (d = amax / 127, level = round-half-away(x * (1 / d)), d stored as fp16): shared by the Q8_0
// encoder and the Int8 precision's panels of float weights. Include only from *_avx2.cpp.
#pragma once
#include "kernels/avx2_common.h"
#include "kernels/blocks.h"

namespace qvl::avx2 {

// Rounds half away from zero, as std::round: truncate, then step away from zero where the dropped
// fraction is at least one half (x - trunc(x) is exact, so the comparison is too).
inline __m256i round_half_away(__m256 x) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 truncated = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  __m256 fraction = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(x, truncated));
  __m256 step = _mm256_or_ps(_mm256_and_ps(x, sign_bit), _mm256_set1_ps(1.0f));  // +-1 with x's sign
  __m256 away = _mm256_and_ps(_mm256_cmp_ps(fraction, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step);
  return _mm256_cvttps_epi32(_mm256_add_ps(truncated, away));
}

// levels[0..32) and the returned fp16 scale of the 32 values x.
inline uint16_t encode_q8_0_block(const __m256 (&x)[4], int8_t* levels) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 amax8 = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_bit, x[0]), _mm256_andnot_ps(sign_bit, x[1])),
                               _mm256_max_ps(_mm256_andnot_ps(sign_bit, x[2]), _mm256_andnot_ps(sign_bit, x[3])));
  __m128 amax4 = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
  amax4 = _mm_max_ps(amax4, _mm_movehl_ps(amax4, amax4));
  float amax = _mm_cvtss_f32(_mm_max_ss(amax4, _mm_movehdup_ps(amax4)));
  float d = amax / 127.0f;
  float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 scale = _mm256_set1_ps(inverse);
  __m256i q[4];
  for (int i = 0; i < 4; ++i) q[i] = round_half_away(_mm256_mul_ps(x[i], scale));
  // packs interleave the 128-bit halves: lanes come out as dwords 0 4 1 5 2 6 3 7 of the wanted order.
  __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(levels), bytes);
  return _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
}

}  // namespace qvl::avx2
