// The 16-bit integer format of the Fast precision on float weights (F32 / F16 / BF16) with many
// activation rows: weights and activations alike are cut into blocks of 32 values along k, each block
// stored as int16 levels with one float scale (x ~= d * level, d = amax / 8191). Every ISA computes the
// very same levels (one multiply, nearest-even rounding, the scale from int16_scale), the integer
// block sums are exact and the float operations on them follow one order (float_int16.cpp), so every
// ISA variant equals the scalar reference.
//
// Why 8191: a block's 32 products of levels within +-8191 sum to at most 32 * 8191^2 = 2146959392 <
// 2^31, so the int32 sums (AVX-512 VNNI vpdpwssd) cannot overflow before each block's conversion to
// float. The rounding error of a block is at most half a step, amax / 16382 (2^-14 of the block's
// largest value); with weights and activations both rounded, a dot product of Gaussian values is off by
// ~1.2e-4 relative RMS, against ~2.1e-4 for the fp16 activations llama.cpp multiplies F16 weights with.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/act_quant_scale.h"

namespace qvl {

constexpr int kInt16Block = 32;
constexpr int kInt16MaxLevel = 8191;
// Values per k-slice: each output is a float sum over a slice's blocks, added into out slice by slice
// (the order every ISA keeps, so the scalar reference can follow it exactly). Long slices mean fewer
// passes over the outputs: 1024 ran ~8% faster than 256 on a Zen 5 core.
constexpr int64_t kInt16Slice = 1024;
static_assert(kInt16Slice % kInt16Block == 0, "slices hold whole blocks");
// x ~= d * level, level = nearest-even(x * inverse), |level| <= 8191; blocks whose largest magnitude is
// below kSmallestActivationBlock are stored as zeros, as the 8-bit activation blocks are.
inline ActivationScale int16_scale(float amax) {
  if (!(amax >= kSmallestActivationBlock)) return {0.0f, 0.0f};
  return {amax / static_cast<float>(kInt16MaxLevel), static_cast<float>(kInt16MaxLevel) / amax};
}

// One activation row of k values (k a multiple of 32) in ActFormat::I16_32: k int16 levels, then the
// k / 32 float scales of its blocks.
inline size_t int16_act_row_bytes(int64_t k) {
  return static_cast<size_t>(k) * sizeof(int16_t) + static_cast<size_t>(k / kInt16Block) * sizeof(float);
}
inline const int16_t* int16_act_levels(const uint8_t* row) { return reinterpret_cast<const int16_t*>(row); }
inline const float* int16_act_scales(const uint8_t* row, int64_t k) {
  return reinterpret_cast<const float*>(row + static_cast<size_t>(k) * sizeof(int16_t));
}

}  // namespace qvl
