// F32, F16 and BF16 weights: conversion to and from float, and the float dot products that serve both
// precisions for these types (and the Exact path of every quantized type, on dequantized rows).
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar {
namespace {

template <typename Stored, float (*ToFloat)(Stored)>
void dequantize_float_row(const uint8_t* src, float* dst, int64_t k) {
  for (int64_t i = 0; i < k; ++i) {
    Stored value;
    std::memcpy(&value, src + i * sizeof(Stored), sizeof(Stored));
    dst[i] = ToFloat(value);
  }
}

template <typename Stored, Stored (*FromFloat)(float)>
void quantize_float_row(const float* src, uint8_t* dst, int64_t k) {
  for (int64_t i = 0; i < k; ++i) {
    Stored value = FromFloat(src[i]);
    std::memcpy(dst + i * sizeof(Stored), &value, sizeof(Stored));
  }
}

float identity(float value) { return value; }

// Eight interleaved partial sums: the same summation shape as an 8-lane SIMD loop, which keeps the
// float32 rounding error of long rows small (each partial sum sees k / 8 terms).
template <typename Stored, float (*ToFloat)(Stored)>
float dot_float_row(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const float* x = reinterpret_cast<const float*>(act_row);
  float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < k; ++i) {
    Stored value;
    std::memcpy(&value, w_row + i * sizeof(Stored), sizeof(Stored));
    partial[i % 8] += ToFloat(value) * x[i];
  }
  return ((partial[0] + partial[4]) + (partial[1] + partial[5])) +
         ((partial[2] + partial[6]) + (partial[3] + partial[7]));
}

template <typename Stored, float (*ToFloat)(Stored), Stored (*FromFloat)(float)>
TypeKernels float_type_kernels() {
  TypeKernels kernels;
  kernels.dequantize_row = dequantize_float_row<Stored, ToFloat>;
  kernels.quantize_row = quantize_float_row<Stored, FromFloat>;
  kernels.act_format = ActFormat::Float;
  kernels.dot_tile = dot_tile_by_rows<dot_float_row<Stored, ToFloat>>;
  return kernels;
}

}  // namespace

void add_float(IsaKernels& table) {
  table.f32 = float_type_kernels<float, identity, identity>();
  table.f16 = float_type_kernels<uint16_t, half_to_float, float_to_half>();
  table.bf16 = float_type_kernels<uint16_t, bf16_to_float, float_to_bf16>();
}

}  // namespace qvl::scalar
