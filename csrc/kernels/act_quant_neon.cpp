// Activation quantization on NEON: the same levels as the scalar reference (act_quant.cpp): one
// multiply by 127 / amax, rounded to nearest-even.
#include "kernels/strict_fp.h"

#include "kernels/act_quant_scale.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"

namespace qvl::neon {
namespace {

float max_magnitude(const float* x, int n) {
  float32x4_t best = vdupq_n_f32(0.0f);
  for (int i = 0; i < n; i += 4) best = vmaxq_f32(best, vabsq_f32(vld1q_f32(x + i)));
  return vmaxvq_f32(best);
}

// Levels of 16 values; returns their sum.
int levels16(const float* x, float32x4_t inverse, int8_t* q) {
  int32x4_t level[4];
  for (int v = 0; v < 4; ++v) level[v] = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 4 * v), inverse));
  int16x8_t first = vcombine_s16(vqmovn_s32(level[0]), vqmovn_s32(level[1]));
  int16x8_t second = vcombine_s16(vqmovn_s32(level[2]), vqmovn_s32(level[3]));
  vst1q_s8(q, vcombine_s8(vqmovn_s16(first), vqmovn_s16(second)));
  return vaddvq_s32(vaddq_s32(vaddq_s32(level[0], level[1]), vaddq_s32(level[2], level[3])));
}

void quantize_act_q8_32(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_32*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    const float* x = src + b * kBlock32;
    ActivationScale scale = activation_scale(max_magnitude(x, kBlock32));
    float32x4_t inverse = vdupq_n_f32(scale.inverse);
    int sum = levels16(x, inverse, blocks[b].qs) + levels16(x + 16, inverse, blocks[b].qs + 16);
    blocks[b].d = scale.d;
    blocks[b].sum = scale.d * static_cast<float>(sum);
  }
}

void quantize_act_q8_k(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_K*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    ActivationScale scale = activation_scale(max_magnitude(x, kBlockK));
    float32x4_t inverse = vdupq_n_f32(scale.inverse);
    for (int g = 0; g < kBlockK / 16; ++g) {
      blocks[b].bsums[g] = static_cast<int16_t>(levels16(x + 16 * g, inverse, blocks[b].qs + 16 * g));
    }
    blocks[b].d = scale.d;
  }
}

// Q8_K's levels (one scale per 256 values) written as blocks of 32 or 16, each with its own sum: the
// same integers as quantize_act_q8_k, in the layout the matrix-matrix panels (panel_neon.h) read.
template <typename Block, int Values>
void quantize_act_q8_k_as(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<Block*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    ActivationScale scale = activation_scale(max_magnitude(x, kBlockK));
    float32x4_t inverse = vdupq_n_f32(scale.inverse);
    for (int i = 0; i < kBlockK / Values; ++i) {
      Block& block = blocks[b * (kBlockK / Values) + i];
      int sum = 0;
      for (int part = 0; part < Values / 16; ++part) {
        sum += levels16(x + Values * i + 16 * part, inverse, block.qs + 16 * part);
      }
      block.d = scale.d;
      block.sum = scale.d * static_cast<float>(sum);
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

}  // namespace qvl::neon
