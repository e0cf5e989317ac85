// Q5_0 (x = d * (q - 16)) and Q5_1 (x = d * q + m): blocks of 32 5-bit values, the low 4 bits packed
// as in Q4_0 and the fifth bits in a 32-bit mask. Scalar reference: dequantize, quantize (ggml /
// gguf-py's encoding, byte for byte) and the integer dot products.
#include "kernels/strict_fp.h"

#include <cmath>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar {
namespace {

inline uint32_t high_bits(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | (static_cast<uint32_t>(qh[1]) << 8) | (static_cast<uint32_t>(qh[2]) << 16) |
         (static_cast<uint32_t>(qh[3]) << 24);
}

inline int level5(const uint8_t* qs, uint32_t qh, int i) {
  int low = i < 16 ? (qs[i] & 0x0F) : (qs[i - 16] >> 4);
  return low | static_cast<int>(((qh >> i) & 1) << 4);
}

inline void pack5(const uint8_t* q, uint8_t* qs, uint8_t* qh) {
  uint32_t mask = 0;
  for (int i = 0; i < 16; ++i) qs[i] = static_cast<uint8_t>((q[i] & 0x0F) | ((q[i + 16] & 0x0F) << 4));
  for (int i = 0; i < kBlock32; ++i) mask |= static_cast<uint32_t>(q[i] >> 4) << i;
  for (int byte = 0; byte < 4; ++byte) qh[byte] = static_cast<uint8_t>(mask >> (8 * byte));
}

inline uint8_t clamp_level(float level, int top) {
  int q = static_cast<int>(level);  // truncation, as the reference encoders do
  return static_cast<uint8_t>(q < 0 ? 0 : (q > top ? top : q));
}

void dequantize_q5_0(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    float d = half_to_float(blocks[b].d);
    uint32_t qh = high_bits(blocks[b].qh);
    for (int i = 0; i < kBlock32; ++i) {
      dst[b * kBlock32 + i] = d * static_cast<float>(level5(blocks[b].qs, qh, i) - 16);
    }
  }
}

// As Q4_0: the largest-magnitude value maps to -16.
void quantize_q5_0(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ5_0*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    float extreme = 0.0f;
    for (int i = 0; i < kBlock32; ++i) {
      if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
    }
    float d = extreme / -16.0f;
    float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[kBlock32];
    for (int i = 0; i < kBlock32; ++i) q[i] = clamp_level(x[i] * inverse + 16.5f, 31);
    blocks[b].d = float_to_half(d);
    pack5(q, blocks[b].qs, blocks[b].qh);
  }
}

float dot_q5_0(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ5_0*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_32*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    uint32_t qh = high_bits(w[b].qh);
    int32_t sumi = 0;
    for (int i = 0; i < kBlock32; ++i) sumi += (level5(w[b].qs, qh, i) - 16) * a[b].qs[i];
    sum += half_to_float(w[b].d) * a[b].d * static_cast<float>(sumi);
  }
  return sum;
}

void dequantize_q5_1(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ5_1*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    float d = half_to_float(blocks[b].d);
    float m = half_to_float(blocks[b].m);
    uint32_t qh = high_bits(blocks[b].qh);
    for (int i = 0; i < kBlock32; ++i) {
      dst[b * kBlock32 + i] = d * static_cast<float>(level5(blocks[b].qs, qh, i)) + m;
    }
  }
}

void quantize_q5_1(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ5_1*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    float lo = x[0], hi = x[0];
    for (int i = 1; i < kBlock32; ++i) {
      lo = std::fmin(lo, x[i]);
      hi = std::fmax(hi, x[i]);
    }
    float d = (hi - lo) / 31.0f;
    float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[kBlock32];
    for (int i = 0; i < kBlock32; ++i) q[i] = clamp_level((x[i] - lo) * inverse + 0.5f, 31);
    blocks[b].d = float_to_half(d);
    blocks[b].m = float_to_half(lo);
    pack5(q, blocks[b].qs, blocks[b].qh);
  }
}

float dot_q5_1(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ5_1*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_32*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    uint32_t qh = high_bits(w[b].qh);
    int32_t sumi = 0;
    for (int i = 0; i < kBlock32; ++i) sumi += level5(w[b].qs, qh, i) * a[b].qs[i];
    sum += half_to_float(w[b].d) * a[b].d * static_cast<float>(sumi) + half_to_float(w[b].m) * a[b].sum;
  }
  return sum;
}

}  // namespace

void add_q5_0_q5_1(IsaKernels& table) {
  table.q5_0 = {dequantize_q5_0, quantize_q5_0, ActFormat::Q8_32, dot_tile_by_rows<dot_q5_0>};
  table.q5_1 = {dequantize_q5_1, quantize_q5_1, ActFormat::Q8_32, dot_tile_by_rows<dot_q5_1>};
}

}  // namespace qvl::scalar
