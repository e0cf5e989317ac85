// Q5_0 and Q5_1 on NEON: the Fast dot products (vdotq_s32), register-tiled over weight and activation
// rows, and the matrix-matrix panels (block32_neon.h, panel_neon.h).
#include "kernels/strict_fp.h"

#include "kernels/block32_neon.h"

namespace qvl::neon {
namespace {

// The 32 5-bit levels of a block, minus `offset`: nibbles plus 16 where the high bit is set.
template <typename Block>
void levels5(const Block& block, int8_t offset, int8x16_t* first, int8x16_t* second) {
  uint8x16_t packed = vld1q_u8(block.qs);
  uint8x16_t low = vorrq_u8(vandq_u8(packed, vdupq_n_u8(0x0F)), bits_to_16s(block.qh[0], block.qh[1]));
  uint8x16_t high = vorrq_u8(vshrq_n_u8(packed, 4), bits_to_16s(block.qh[2], block.qh[3]));
  *first = vsubq_s8(vreinterpretq_s8_u8(low), vdupq_n_s8(offset));
  *second = vsubq_s8(vreinterpretq_s8_u8(high), vdupq_n_s8(offset));
}

}  // namespace

// Q5_0: 5-bit levels minus the zero point 16; Q5_1: 5-bit levels, with the min.
void add_q5_0_q5_1(IsaKernels& table) {
  set_block32_kernels<LevelsOf<BlockQ5_0, false, 16, levels5<BlockQ5_0>>>(table.q5_0);
  set_block32_kernels<LevelsOf<BlockQ5_1, true, 0, levels5<BlockQ5_1>>>(table.q5_1);
}

}  // namespace qvl::neon
