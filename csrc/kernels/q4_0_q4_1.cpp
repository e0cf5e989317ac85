// Q4_0 (x = d * (q - 8)) and Q4_1 (x = d * q + m): blocks of 32 4-bit values. Scalar reference:
// dequantize, quantize (ggml / gguf-py's encoding, byte for byte) and the integer dot products.
#include "kernels/strict_fp.h"

#include <cmath>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar {
namespace {

// Value i of a block: the low nibble of qs[i] for i < 16, the high nibble of qs[i - 16] after.
inline int nibble(const uint8_t* qs, int i) { return i < 16 ? (qs[i] & 0x0F) : (qs[i - 16] >> 4); }

inline void pack_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int i = 0; i < 16; ++i) qs[i] = static_cast<uint8_t>(q[i] | (q[i + 16] << 4));
}

// The value of largest magnitude, sign kept (the first one on ties, as numpy's argmax).
inline float signed_absmax(const float* x, int n) {
  float best = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(best)) best = x[i];
  }
  return best;
}

inline uint8_t clamp_level(float level, int top) {
  int q = static_cast<int>(level);  // truncation, as the reference encoders do
  return static_cast<uint8_t>(q < 0 ? 0 : (q > top ? top : q));
}

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    float d = half_to_float(blocks[b].d);
    for (int i = 0; i < kBlock32; ++i) dst[b * kBlock32 + i] = d * static_cast<float>(nibble(blocks[b].qs, i) - 8);
  }
}

// The scale maps the largest-magnitude value to -8, the one end of [-8, 7] that is always reachable.
void quantize_q4_0(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ4_0*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    float d = signed_absmax(x, kBlock32) / -8.0f;
    float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[kBlock32];
    for (int i = 0; i < kBlock32; ++i) q[i] = clamp_level(x[i] * inverse + 8.5f, 15);
    blocks[b].d = float_to_half(d);
    pack_nibbles(q, blocks[b].qs);
  }
}

float dot_q4_0(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ4_0*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_32*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    int32_t sumi = 0;
    for (int i = 0; i < kBlock32; ++i) sumi += (nibble(w[b].qs, i) - 8) * a[b].qs[i];
    sum += half_to_float(w[b].d) * a[b].d * static_cast<float>(sumi);
  }
  return sum;
}

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    float d = half_to_float(blocks[b].d);
    float m = half_to_float(blocks[b].m);
    for (int i = 0; i < kBlock32; ++i) dst[b * kBlock32 + i] = d * static_cast<float>(nibble(blocks[b].qs, i)) + m;
  }
}

void quantize_q4_1(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ4_1*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    float lo = x[0], hi = x[0];
    for (int i = 1; i < kBlock32; ++i) {
      lo = std::fmin(lo, x[i]);
      hi = std::fmax(hi, x[i]);
    }
    float d = (hi - lo) / 15.0f;
    float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[kBlock32];
    for (int i = 0; i < kBlock32; ++i) q[i] = clamp_level((x[i] - lo) * inverse + 0.5f, 15);
    blocks[b].d = float_to_half(d);
    blocks[b].m = float_to_half(lo);
    pack_nibbles(q, blocks[b].qs);
  }
}

// sum(x * a) = d * da * sum(q * qa) + m * (da * sum(qa)); the activation block carries da * sum(qa).
float dot_q4_1(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ4_1*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_32*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    int32_t sumi = 0;
    for (int i = 0; i < kBlock32; ++i) sumi += nibble(w[b].qs, i) * a[b].qs[i];
    sum += half_to_float(w[b].d) * a[b].d * static_cast<float>(sumi) + half_to_float(w[b].m) * a[b].sum;
  }
  return sum;
}

}  // namespace

void add_q4_0_q4_1(IsaKernels& table) {
  table.q4_0 = {dequantize_q4_0, quantize_q4_0, ActFormat::Q8_32, dot_tile_by_rows<dot_q4_0>};
  table.q4_1 = {dequantize_q4_1, quantize_q4_1, ActFormat::Q8_32, dot_tile_by_rows<dot_q4_1>};
}

}  // namespace qvl::scalar
