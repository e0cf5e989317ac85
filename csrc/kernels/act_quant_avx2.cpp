// Activation quantization on AVX2: the same levels as the scalar reference (act_quant.cpp): one
// multiply by 127 / amax, rounded to nearest-even.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/act_quant_scale.h"
#include "kernels/avx2_common.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"

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
void levels32(const float* x, __m256 inverse, int8_t* q, int* first_sum, int* second_sum) {
  __m256i level[4];
  for (int v = 0; v < 4; ++v) {
    __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * v), inverse);
    level[v] = _mm256_cvtps_epi32(_mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  *first_sum = horizontal_sum_i32(_mm256_add_epi32(level[0], level[1]));
  *second_sum = horizontal_sum_i32(_mm256_add_epi32(level[2], level[3]));
  // packs interleave 128-bit lanes; the permutation puts the 32 bytes back in order.
  __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(level[0], level[1]), _mm256_packs_epi32(level[2], level[3]));
  bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), bytes);
}

void quantize_act_q8_32(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_32*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    ActivationScale scale = activation_scale(max_magnitude(x, kBlock32));
    int first, second;
    levels32(x, _mm256_set1_ps(scale.inverse), blocks[b].qs, &first, &second);
    blocks[b].d = scale.d;
    blocks[b].sum = scale.d * static_cast<float>(first + second);
  }
}

void quantize_act_q8_k(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_K*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    ActivationScale scale = activation_scale(max_magnitude(x, kBlockK));
    __m256 inverse = _mm256_set1_ps(scale.inverse);
    for (int chunk = 0; chunk < kBlockK / 32; ++chunk) {
      int first, second;
      levels32(x + 32 * chunk, inverse, blocks[b].qs + 32 * chunk, &first, &second);
      blocks[b].bsums[2 * chunk] = static_cast<int16_t>(first);
      blocks[b].bsums[2 * chunk + 1] = static_cast<int16_t>(second);
    }
    blocks[b].d = scale.d;
  }
}

// Q8_K's levels (one scale per 256 values) written as blocks of 32 or 16, each with its own sum: the
// same integers as quantize_act_q8_k, in the layout the matrix-matrix kernels read.
template <typename Block, int Values>
void quantize_act_q8_k_as(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<Block*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    ActivationScale scale = activation_scale(max_magnitude(x, kBlockK));
    __m256 inverse = _mm256_set1_ps(scale.inverse);
    for (int chunk = 0; chunk < kBlockK / 32; ++chunk) {
      alignas(32) int8_t q[32];
      int sums[2];
      levels32(x + 32 * chunk, inverse, q, &sums[0], &sums[1]);
      for (int part = 0; part < 32 / Values; ++part) {
        Block& block = blocks[b * (kBlockK / Values) + chunk * (32 / Values) + part];
        std::memcpy(block.qs, q + part * Values, Values);
        block.d = scale.d;
        int sum = Values == 32 ? sums[0] + sums[1] : sums[part];
        block.sum = scale.d * static_cast<float>(sum);
      }
    }
  }
}

}  // namespace

void add_act_quant(IsaKernels& table) {
  table.quantize_act_q8_32 = quantize_act_q8_32;
  table.quantize_act_q8_k = quantize_act_q8_k;
  table.quantize_act_q8_k_as_32 = quantize_act_q8_k_as<ActQ8_32, 32>;
  table.quantize_act_q8_k_as_16 = quantize_act_q8_k_as<ActQ8_16, 16>;
}

}  // namespace qvl::avx2
