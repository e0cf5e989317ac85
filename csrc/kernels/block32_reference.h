// The scalar reference of the 32-value block types with 4- or 5-bit levels, written once over a type's
// level layout. Zero-point types (Q4_0, Q5_0): x = d * (q - Z), Z = (top + 1) / 2, the largest-magnitude
// value mapped to -Z, the one end of [-Z, Z - 1] that is always reachable. Min types (Q4_1, Q5_1):
// x = d * q + m over [min, max]. Encodings as ggml / gguf-py's, byte for byte. The Layout gives the
// Block, the top level, whether the block has a min, how its 32 levels are read (levels) and written
// (pack); q4_0_q4_1.cpp and q5_0_q5_1.cpp hold only their layouts.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar::block32 {

inline uint8_t clamp_level(float level, int top) {
  int q = static_cast<int>(level);  // truncation, as the reference encoders do
  return static_cast<uint8_t>(q < 0 ? 0 : (q > top ? top : q));
}

// What every layout declares: its block, its top level, whether it has a min.
template <typename BlockT, int Top, bool HasMin>
struct LayoutOf {
  using Block = BlockT;
  static constexpr int kTop = Top;
  static constexpr bool kHasMin = HasMin;
};

template <typename Layout>
constexpr int kZeroPoint = Layout::kHasMin ? 0 : (Layout::kTop + 1) / 2;

template <typename Layout>
void dequantize(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const typename Layout::Block*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    int levels[kBlock32];
    Layout::levels(blocks[b], levels);
    float d = half_to_float(blocks[b].d);
    float* out = dst + b * kBlock32;
    if constexpr (Layout::kHasMin) {
      float m = half_to_float(blocks[b].m);
      for (int i = 0; i < kBlock32; ++i) out[i] = d * static_cast<float>(levels[i]) + m;
    } else {
      for (int i = 0; i < kBlock32; ++i) out[i] = d * static_cast<float>(levels[i] - kZeroPoint<Layout>);
    }
  }
}

template <typename Layout>
void quantize(const float* src, uint8_t* dst, int64_t k) {
  constexpr int kTop = Layout::kTop;
  auto* blocks = reinterpret_cast<typename Layout::Block*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    uint8_t q[kBlock32];
    if constexpr (Layout::kHasMin) {
      float lo = x[0], hi = x[0];
      for (int i = 1; i < kBlock32; ++i) {
        lo = std::fmin(lo, x[i]);
        hi = std::fmax(hi, x[i]);
      }
      float d = (hi - lo) / static_cast<float>(kTop);
      float inverse = d != 0.0f ? 1.0f / d : 0.0f;
      for (int i = 0; i < kBlock32; ++i) q[i] = clamp_level((x[i] - lo) * inverse + 0.5f, kTop);
      blocks[b].d = float_to_half(d);
      blocks[b].m = float_to_half(lo);
    } else {
      float extreme = 0.0f;  // the value of largest magnitude, sign kept (the first on ties, as numpy's argmax)
      for (int i = 0; i < kBlock32; ++i) {
        if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
      }
      float d = extreme / -static_cast<float>(kZeroPoint<Layout>);
      float inverse = d != 0.0f ? 1.0f / d : 0.0f;
      for (int i = 0; i < kBlock32; ++i) q[i] = clamp_level(x[i] * inverse + (kZeroPoint<Layout> + 0.5f), kTop);
      blocks[b].d = float_to_half(d);
    }
    Layout::pack(q, blocks[b]);
  }
}

// Zero-point types: d * da * sum((q - Z) * qa); min types add m * (da * sum(qa)), which the activation
// block carries.
template <typename Layout>
float dot(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const typename Layout::Block*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_32*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    int levels[kBlock32];
    Layout::levels(w[b], levels);
    int32_t sumi = 0;
    for (int i = 0; i < kBlock32; ++i) sumi += (levels[i] - kZeroPoint<Layout>) * a[b].qs[i];
    float block = half_to_float(w[b].d) * a[b].d * static_cast<float>(sumi);
    if constexpr (Layout::kHasMin) block += half_to_float(w[b].m) * a[b].sum;
    sum += block;
  }
  return sum;
}

// The type's table entry: the reference dequantizer, encoder and row dot (against ActQ8_32 blocks).
template <typename Layout>
TypeKernels kernels() {
  return {dequantize<Layout>, quantize<Layout>, ActFormat::Q8_32, dot_tile_by_rows<dot<Layout>>};
}

}  // namespace qvl::scalar::block32
