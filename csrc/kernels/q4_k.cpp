// Q4_K: super-blocks of 256 values in 8 sub-blocks of 32, x = d * sc * q - dmin * mn with q in [0, 15]
// and 6-bit sc, mn per sub-block. Scalar reference: dequantize, quantize (least-squares scale and min
// search per sub-block) and the integer dot product against ActQ8_K activations.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/k_quant_fit.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar {
namespace {

constexpr int kSubBlocks = 8;
constexpr int kSubBlock = 32;

// Level l of sub-block s: sub-blocks 2j and 2j+1 share the 32 bytes at 32j (low, high nibble).
inline int level4(const uint8_t* qs, int s, int l) { return (qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F; }

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const BlockQ4_K& block = blocks[b];
    float d = half_to_float(block.d), dmin = half_to_float(block.dmin);
    for (int s = 0; s < kSubBlocks; ++s) {
      uint8_t sc, mn;
      unpack_scale_min_k(block.scales, s, &sc, &mn);
      float scale = d * sc, min = dmin * mn;
      float* out = dst + b * kBlockK + s * kSubBlock;
      for (int l = 0; l < kSubBlock; ++l) out[l] = scale * static_cast<float>(level4(block.qs, s, l)) - min;
    }
  }
}

void quantize_q4_k(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ4_K*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    BlockQ4_K& block = blocks[b];
    const SuperBlockScales fitted = fit_super_block_scales(x, 15, block.scales);
    block.d = fitted.d;
    block.dmin = fitted.dmin;
    const uint8_t* sc = fitted.scale;
    const uint8_t* mn = fitted.min;
    // Levels are chosen against the scales as stored, so rounding the scales costs as little as possible.
    float d = half_to_float(block.d), dmin = half_to_float(block.dmin);
    std::memset(block.qs, 0, sizeof(block.qs));
    for (int s = 0; s < kSubBlocks; ++s) {
      float scale = d * sc[s], min = dmin * mn[s];
      for (int l = 0; l < kSubBlock; ++l) {
        int q = nearest_level(x[s * kSubBlock + l], scale, min, 15);
        block.qs[32 * (s / 2) + l] |= static_cast<uint8_t>(q << (4 * (s % 2)));
      }
    }
  }
}

// Per super-block: da * (d * sum_s sc_s * sum(q * qa) - dmin * sum_s mn_s * sum(qa)), all sums integer.
float dot_q4_k(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ4_K*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_K*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    int32_t scaled = 0, offsets = 0;
    for (int s = 0; s < kSubBlocks; ++s) {
      uint8_t sc, mn;
      unpack_scale_min_k(w[b].scales, s, &sc, &mn);
      int32_t sumi = 0;
      for (int l = 0; l < kSubBlock; ++l) sumi += level4(w[b].qs, s, l) * a[b].qs[s * kSubBlock + l];
      scaled += sc * sumi;
      offsets += mn * (a[b].bsums[2 * s] + a[b].bsums[2 * s + 1]);
    }
    sum += a[b].d * (half_to_float(w[b].d) * static_cast<float>(scaled) -
                     half_to_float(w[b].dmin) * static_cast<float>(offsets));
  }
  return sum;
}

}  // namespace

void add_q4_k(IsaKernels& table) {
  table.q4_k = {dequantize_q4_k, quantize_q4_k, ActFormat::Q8_K, dot_tile_by_rows<dot_q4_k>};
}

}  // namespace qvl::scalar
