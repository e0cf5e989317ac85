// Float weights (F32 / F16 / BF16) under the Fast precision with many activation rows, as 16-bit
// integer blocks (int16_blocks.h): the scalar reference of float_int16_avx512.cpp. Each weight row is
// encoded on the fly, exactly as the activations are; each output is summed per k-slice of kInt16Slice values
// (block by block, acc = fma(block sum, d_w * d_x, acc)) and the slices are added in order, the same
// float operations the AVX-512 kernel does per lane, so the two agree to the last bit.
#include "kernels/strict_fp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/half.h"
#include "kernels/int16_blocks.h"
#include "kernels/kernel_table.h"

namespace qvl::scalar {
namespace {

// Encodes k floats (k a multiple of 32) as int16 levels and per-block scales.
void encode_int16_blocks(const float* x, int64_t k, int16_t* levels, float* scales) {
  for (int64_t b = 0; b < k / kInt16Block; ++b) {
    const float* block = x + b * kInt16Block;
    float amax = 0.0f;
    for (int i = 0; i < kInt16Block; ++i) amax = std::fmax(amax, std::fabs(block[i]));
    const ActivationScale scale = int16_scale(amax);
    for (int i = 0; i < kInt16Block; ++i) {
      levels[b * kInt16Block + i] = static_cast<int16_t>(std::nearbyint(block[i] * scale.inverse));
    }
    scales[b] = scale.d;
  }
}

void quantize_act_i16_32(const float* src, uint8_t* dst, int64_t k) {
  encode_int16_blocks(src, k, reinterpret_cast<int16_t*>(dst),
                      reinterpret_cast<float*>(dst + static_cast<size_t>(k) * sizeof(int16_t)));
}

float dot_int16_rows(int64_t k, const int16_t* w_levels, const float* w_scales, const uint8_t* act_row) {
  const int16_t* x_levels = int16_act_levels(act_row);
  const float* x_scales = int16_act_scales(act_row, k);
  float total = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += kInt16Slice) {
    float acc = 0.0f;
    for (int64_t b = k0 / kInt16Block; b < std::min(k, k0 + kInt16Slice) / kInt16Block; ++b) {
      int32_t sum = 0;  // exact: |sum| <= 32 * 8191^2 < 2^31
      for (int64_t i = b * kInt16Block; i < (b + 1) * kInt16Block; ++i) {
        sum += static_cast<int32_t>(w_levels[i]) * static_cast<int32_t>(x_levels[i]);
      }
      acc = std::fma(static_cast<float>(sum), w_scales[b] * x_scales[b], acc);
    }
    total = k0 == 0 ? acc : total + acc;
  }
  return total;
}

template <typename Stored, float (*ToFloat)(Stored)>
void int16_gemm_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                     size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  thread_local std::vector<float> values;
  thread_local std::vector<int16_t> levels;
  thread_local std::vector<float> scales;
  values.resize(static_cast<size_t>(k));
  levels.resize(static_cast<size_t>(k));
  scales.resize(static_cast<size_t>(k / kInt16Block));
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t i = 0; i < k; ++i) {
      Stored stored;
      std::memcpy(&stored, w + r * w_stride + i * sizeof(Stored), sizeof(Stored));
      values[i] = ToFloat(stored);
    }
    encode_int16_blocks(values.data(), k, levels.data(), scales.data());
    for (int64_t j = 0; j < n_act; ++j) {
      out[j * out_stride + r] = dot_int16_rows(k, levels.data(), scales.data(), act + j * act_stride);
    }
  }
}

float identity(float value) { return value; }

}  // namespace

void add_float_int16(IsaKernels& table) {
  table.quantize_act_i16_32 = quantize_act_i16_32;
  table.f32.int16_gemm_tile = int16_gemm_tile<float, identity>;
  table.f16.int16_gemm_tile = int16_gemm_tile<uint16_t, half_to_float>;
  table.bf16.int16_gemm_tile = int16_gemm_tile<uint16_t, bf16_to_float>;
}

void keep_float_gemm_for_float_weights(IsaKernels& table) {
  table.f32.int16_gemm_tile = nullptr;
  table.f16.int16_gemm_tile = nullptr;
  table.bf16.int16_gemm_tile = nullptr;
}

}  // namespace qvl::scalar
