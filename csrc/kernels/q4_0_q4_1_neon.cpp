// Q4_0 and Q4_1 on NEON: the Fast dot products (vdotq_s32), register-tiled over weight and activation
// rows, and the matrix-matrix panels (block32_neon.h, panel_neon.h).
#include "kernels/strict_fp.h"

#include "kernels/block32_neon.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {
namespace {

// Levels 0..15 (low nibbles) and 16..31 (high nibbles) of a block, minus `offset`.
inline void nibble_levels(const uint8_t* qs, int8_t offset, int8x16_t* first, int8x16_t* second) {
  uint8x16_t packed = vld1q_u8(qs);
  *first = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0F))), vdupq_n_s8(offset));
  *second = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), vdupq_n_s8(offset));
}

// Q4_0: nibbles minus the zero point 8; Q4_1: nibbles, with the min.
template <typename BlockT, bool HasMin>
struct Q4Levels {
  using Block = BlockT;
  static constexpr bool kHasMin = HasMin;
  static void load(const Block& block, int8x16_t* first, int8x16_t* second) {
    nibble_levels(block.qs, HasMin ? 0 : 8, first, second);
  }
};
using Q4_0Levels = Q4Levels<BlockQ4_0, false>;
using Q4_1Levels = Q4Levels<BlockQ4_1, true>;

}  // namespace

void add_q4_0_q4_1(IsaKernels& table) {
  table.q4_0.dot_tile = dot_tile_tiled<Block32Dot<Q4_0Levels>>;
  table.q4_1.dot_tile = dot_tile_tiled<Block32Dot<Q4_1Levels>>;
  table.q4_0.gemm_tile = gemm_tile<Block32Panel<Q4_0Levels>>;
  table.q4_1.gemm_tile = gemm_tile<Block32Panel<Q4_1Levels>>;
}

}  // namespace qvl::neon
