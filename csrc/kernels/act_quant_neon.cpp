// Activation quantization on NEON (act_quant_blocks.h over these primitives): the same levels as the
// scalar reference (act_quant.cpp): one multiply by 127 / amax, rounded to nearest-even.
#include "kernels/strict_fp.h"

#include "kernels/act_quant_blocks.h"
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

struct Levels {
  static float max_magnitude(const float* x, int n) { return neon::max_magnitude(x, n); }
  static void levels32(const float* x, float inverse_scale, int8_t* q, int (&sums)[2]) {
    const float32x4_t inverse = vdupq_n_f32(inverse_scale);
    sums[0] = levels16(x, inverse, q);
    sums[1] = levels16(x + 16, inverse, q + 16);
  }
};

}  // namespace

void add_act_quant(IsaKernels& table) { act_quant::set_quantizers<Levels>(table); }

}  // namespace qvl::neon
