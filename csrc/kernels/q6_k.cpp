// Q6_K: super-blocks of 256 values in 16 sub-blocks of 16, x = d * scale * (q - 32) with q in [0, 63]
// and an int8 scale per sub-block. Scalar reference: dequantize, quantize (least-squares scale search
// per sub-block), the integer dot product against ActQ8_K activations (decode) and the product against
// ActQ8_16 blocks (matrix-matrix).
#include "kernels/strict_fp.h"

#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/k_quant_fit.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar {
namespace {

constexpr int kSubBlocks = 16;
constexpr int kSubBlock = 16;

// Level of value i (0..255), in [0, 63]; see BlockQ6_K for the bit layout.
inline int level6(const BlockQ6_K& block, int i) {
  int half = i / 128, j = i % 128;
  int low = (block.ql[64 * half + j % 64] >> (4 * (j / 64))) & 0x0F;
  int high = (block.qh[32 * half + j % 32] >> (2 * (j / 32))) & 0x03;
  return low | (high << 4);
}

inline void set_level6(BlockQ6_K& block, int i, int q) {
  int half = i / 128, j = i % 128;
  block.ql[64 * half + j % 64] |= static_cast<uint8_t>((q & 0x0F) << (4 * (j / 64)));
  block.qh[32 * half + j % 32] |= static_cast<uint8_t>((q >> 4) << (2 * (j / 32)));
}

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const BlockQ6_K& block = blocks[b];
    float d = half_to_float(block.d);
    for (int i = 0; i < kBlockK; ++i) {
      float scale = d * static_cast<float>(block.scales[i / kSubBlock]);
      dst[b * kBlockK + i] = scale * static_cast<float>(level6(block, i) - 32);
    }
  }
}

void quantize_q6_k(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ6_K*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    BlockQ6_K& block = blocks[b];
    float scales[kSubBlocks], weight[kSubBlock];
    float largest = 0.0f;
    for (int s = 0; s < kSubBlocks; ++s) {
      fit_weights(x + s * kSubBlock, kSubBlock, weight);
      scales[s] = fit_symmetric_scale(x + s * kSubBlock, weight, kSubBlock, 32);
      largest = std::fmax(largest, std::fabs(scales[s]));
    }
    block.d = float_to_half(std::fmin(largest / 127.0f, 65504.0f));
    float d = half_to_float(block.d);
    std::memset(block.ql, 0, sizeof(block.ql));
    std::memset(block.qh, 0, sizeof(block.qh));
    for (int s = 0; s < kSubBlocks; ++s) {
      float level = d > 0.0f ? std::nearbyint(scales[s] / d) : 0.0f;
      block.scales[s] = static_cast<int8_t>(std::fmax(-127.0f, std::fmin(127.0f, level)));
      float scale = d * block.scales[s];
      for (int l = 0; l < kSubBlock; ++l) {
        // x ~= scale * (q - 32): the level as an offset-free fit, shifted by 32 (and clamped) afterwards.
        float exact = scale != 0.0f ? x[s * kSubBlock + l] / scale : 0.0f;
        float q = std::nearbyint(std::fmax(-32.0f, std::fmin(31.0f, exact)));
        set_level6(block, s * kSubBlock + l, static_cast<int>(q) + 32);
      }
    }
  }
}

float dot_q6_k(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ6_K*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_K*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    int32_t total = 0;
    for (int s = 0; s < kSubBlocks; ++s) {
      int32_t sumi = 0;
      for (int l = 0; l < kSubBlock; ++l) {
        int i = s * kSubBlock + l;
        sumi += (level6(w[b], i) - 32) * a[b].qs[i];
      }
      total += w[b].scales[s] * a[b].multipliers[s / 2] * sumi;
    }
    sum += half_to_float(w[b].d) * a[b].d * static_cast<float>(total);
  }
  return sum;
}

// The matrix-matrix product's reference, against ActQ8_16 blocks (a scale per 16 values, one per
// sub-block).
float dot_q6_k_per_sub_block(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ6_K*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_16*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float d = half_to_float(w[b].d);
    for (int s = 0; s < kSubBlocks; ++s) {
      const ActQ8_16& act = a[b * kSubBlocks + s];
      int32_t sumi = 0;
      for (int l = 0; l < kSubBlock; ++l) sumi += (level6(w[b], s * kSubBlock + l) - 32) * act.qs[l];
      sum += act.d * d * static_cast<float>(w[b].scales[s]) * static_cast<float>(sumi);
    }
  }
  return sum;
}

}  // namespace

void add_q6_k(IsaKernels& table) {
  table.q6_k = {dequantize_q6_k, quantize_q6_k, ActFormat::Q8_K, dot_tile_by_rows<dot_q6_k>,
                dot_tile_by_rows<dot_q6_k_per_sub_block>, ActFormat::Q8_16};
}

}  // namespace qvl::scalar
