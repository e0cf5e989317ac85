// Activation quantization on AVX2 (act_quant_blocks.h over these primitives): the same levels as the
// scalar reference (act_quant.cpp): one multiply by 127 / amax, rounded to nearest-even.
#include "kernels/strict_fp.h"

#include "kernels/act_quant_blocks.h"
#include "kernels/avx2_common.h"

namespace qvl::avx2 {
namespace {

float max_magnitude(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 best = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) best = _mm256_max_ps(best, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 half = _mm_max_ps(_mm256_castps256_ps128(best), _mm256_extractf128_ps(best, 1));
  half = _mm_max_ps(half, _mm_movehl_ps(half, half));
  half = _mm_max_ss(half, _mm_movehdup_ps(half));
  return _mm_cvtss_f32(half);
}

int horizontal_sum_i32(__m256i v) {
  __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
  return _mm_cvtsi128_si32(sum);
}

// Levels of 32 values; writes the sums of values 0..15 and 16..31.
void levels32(const float* x, __m256 inverse, int8_t* q, int (&sums)[2]) {
  __m256i level[4];
  for (int v = 0; v < 4; ++v) {
    __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * v), inverse);
    level[v] = _mm256_cvtps_epi32(_mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  sums[0] = horizontal_sum_i32(_mm256_add_epi32(level[0], level[1]));
  sums[1] = horizontal_sum_i32(_mm256_add_epi32(level[2], level[3]));
  // packs interleave 128-bit lanes; the permutation puts the 32 bytes back in order.
  __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(level[0], level[1]), _mm256_packs_epi32(level[2], level[3]));
  bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), bytes);
}

struct Levels {
  static float max_magnitude(const float* x, int n) { return avx2::max_magnitude(x, n); }
  static void levels32(const float* x, float inverse, int8_t* q, int (&sums)[2]) {
    avx2::levels32(x, _mm256_set1_ps(inverse), q, sums);
  }
};

}  // namespace

void add_act_quant(IsaKernels& table) { act_quant::set_quantizers<Levels>(table); }

}  // namespace qvl::avx2
