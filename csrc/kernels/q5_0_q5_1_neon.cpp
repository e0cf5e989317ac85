// Q5_0 and Q5_1 on NEON: the Fast dot products (vdotq_s32), register-tiled over weight and activation
// rows, and the matrix-matrix panels (block32_neon.h, panel_neon.h).
#include "kernels/strict_fp.h"

#include "kernels/block32_neon.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {
namespace {

// The 32 5-bit levels of a block, minus `offset`: nibbles plus 16 where the high bit is set.
inline void levels5(const uint8_t* qs, const uint8_t* qh, int8_t offset, int8x16_t* first, int8x16_t* second) {
  uint8x16_t packed = vld1q_u8(qs);
  uint8x16_t low = vorrq_u8(vandq_u8(packed, vdupq_n_u8(0x0F)), bits_to_16s(qh[0], qh[1]));
  uint8x16_t high = vorrq_u8(vshrq_n_u8(packed, 4), bits_to_16s(qh[2], qh[3]));
  *first = vsubq_s8(vreinterpretq_s8_u8(low), vdupq_n_s8(offset));
  *second = vsubq_s8(vreinterpretq_s8_u8(high), vdupq_n_s8(offset));
}

// Q5_0: 5-bit levels minus the zero point 16; Q5_1: 5-bit levels, with the min.
template <typename BlockT, bool HasMin>
struct Q5Levels {
  using Block = BlockT;
  static constexpr bool kHasMin = HasMin;
  static void load(const Block& block, int8x16_t* first, int8x16_t* second) {
    levels5(block.qs, block.qh, HasMin ? 0 : 16, first, second);
  }
};
using Q5_0Levels = Q5Levels<BlockQ5_0, false>;
using Q5_1Levels = Q5Levels<BlockQ5_1, true>;

}  // namespace

void add_q5_0_q5_1(IsaKernels& table) {
  table.q5_0.dot_tile = dot_tile_tiled<Block32Dot<Q5_0Levels>>;
  table.q5_1.dot_tile = dot_tile_tiled<Block32Dot<Q5_1Levels>>;
  table.q5_0.gemm_tile = gemm_tile<Block32Panel<Q5_0Levels>>;
  table.q5_1.gemm_tile = gemm_tile<Block32Panel<Q5_1Levels>>;
}

}  // namespace qvl::neon
