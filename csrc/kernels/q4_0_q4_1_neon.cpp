// Q4_0 and Q4_1 on NEON: the Fast dot products (vdotq_s32), register-tiled over weight and activation
// rows, and the matrix-matrix panels (block32_neon.h, panel_neon.h).
#include "kernels/strict_fp.h"

#include "kernels/block32_neon.h"

namespace qvl::neon {
namespace {

// Levels 0..15 (low nibbles) and 16..31 (high nibbles) of a block, minus `offset`.
template <typename Block>
void nibble_levels(const Block& block, int8_t offset, int8x16_t* first, int8x16_t* second) {
  uint8x16_t packed = vld1q_u8(block.qs);
  *first = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0F))), vdupq_n_s8(offset));
  *second = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), vdupq_n_s8(offset));
}

}  // namespace

// Q4_0: nibbles minus the zero point 8; Q4_1: nibbles, with the min.
void add_q4_0_q4_1(IsaKernels& table) {
  set_block32_kernels<LevelsOf<BlockQ4_0, false, 8, nibble_levels<BlockQ4_0>>>(table.q4_0);
  set_block32_kernels<LevelsOf<BlockQ4_1, true, 0, nibble_levels<BlockQ4_1>>>(table.q4_1);
}

}  // namespace qvl::neon
