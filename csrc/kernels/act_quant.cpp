// Activation quantization for the Fast path (scalar reference): each block of x becomes int8 levels
// q = nearest-even(x * 127 / amax) and a float scale d = amax / 127; ActQ8_K's sub-blocks take the
// scales of act_quant_scale.h. Every ISA variant computes the very same levels (one multiply, the same
// rounding), so their dot products differ only in float summation.
#include "kernels/strict_fp.h"

#include <cmath>

#include "kernels/act_quant_scale.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"

namespace qvl::scalar {
namespace {

float max_magnitude(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  return amax;
}

// Writes n levels of x and returns the block's scale d.
float quantize_levels(const float* x, int n, int8_t* q) {
  ActivationScale scale = activation_scale(max_magnitude(x, n));
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * scale.inverse));
  return scale.d;
}

void quantize_act_q8_32(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_32*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    blocks[b].d = quantize_levels(src + b * kBlock32, kBlock32, blocks[b].qs);
    int32_t sum = 0;
    for (int i = 0; i < kBlock32; ++i) sum += blocks[b].qs[i];
    blocks[b].sum = blocks[b].d * static_cast<float>(sum);
  }
}

void quantize_act_q8_16(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_16*>(dst);
  for (int64_t b = 0; b < k / 16; ++b) {
    blocks[b].d = quantize_levels(src + b * 16, 16, blocks[b].qs);
    int32_t sum = 0;
    for (int i = 0; i < 16; ++i) sum += blocks[b].qs[i];
    blocks[b].sum = blocks[b].d * static_cast<float>(sum);
  }
}

void quantize_act_q8_k(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_K*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    float sub_block_amax[kBlockK / 32];
    for (int s = 0; s < kBlockK / 32; ++s) sub_block_amax[s] = max_magnitude(x + 32 * s, 32);
    const SuperBlockScale base = super_block_scale(sub_block_amax);
    blocks[b].d = base.d;
    for (int s = 0; s < kBlockK / 32; ++s) {
      const SubBlockScale scale = sub_block_scale(base, sub_block_amax[s]);
      blocks[b].multipliers[s] = static_cast<uint8_t>(scale.multiplier);
      for (int i = 32 * s; i < 32 * s + 32; ++i) {
        blocks[b].qs[i] = static_cast<int8_t>(std::nearbyint(x[i] * scale.inverse));
      }
    }
    for (int g = 0; g < kBlockK / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += blocks[b].qs[16 * g + i];
      blocks[b].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

}  // namespace

void add_act_quant(IsaKernels& table) {
  table.quantize_act_q8_32 = quantize_act_q8_32;
  table.quantize_act_q8_16 = quantize_act_q8_16;
  table.quantize_act_q8_k = quantize_act_q8_k;
}

}  // namespace qvl::scalar
