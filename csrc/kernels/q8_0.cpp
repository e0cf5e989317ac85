// Q8_0: blocks of 32 int8 values with one fp16 scale. Scalar reference: dequantize, quantize (the
// round-to-nearest encoding of ggml / gguf-py, byte for byte) and the integer dot product.
#include "kernels/strict_fp.h"

#include <cmath>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar {
namespace {

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    float d = half_to_float(blocks[b].d);
    for (int i = 0; i < kBlock32; ++i) dst[b * kBlock32 + i] = static_cast<float>(blocks[b].qs[i]) * d;
  }
}

void quantize_q8_0(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    float amax = 0.0f;
    for (int i = 0; i < kBlock32; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    float d = amax / 127.0f;
    float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = float_to_half(d);
    for (int i = 0; i < kBlock32; ++i) blocks[b].qs[i] = static_cast<int8_t>(std::round(x[i] * inverse));
  }
}

float dot_q8_0(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ8_0*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_32*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    int32_t sumi = 0;
    for (int i = 0; i < kBlock32; ++i) sumi += static_cast<int32_t>(w[b].qs[i]) * a[b].qs[i];
    sum += half_to_float(w[b].d) * a[b].d * static_cast<float>(sumi);
  }
  return sum;
}

}  // namespace

void add_q8_0(IsaKernels& table) {
  table.q8_0.dequantize_row = dequantize_q8_0;
  table.q8_0.quantize_row = quantize_q8_0;
  table.q8_0.act_format = ActFormat::Q8_32;
  table.q8_0.dot_tile = dot_tile_by_rows<dot_q8_0>;
}

}  // namespace qvl::scalar
