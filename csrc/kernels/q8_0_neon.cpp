// Q8_0 on NEON: the Fast dot product and the matrix-matrix panels (block32_neon.h, panel_neon.h) on the
// stored signed levels.
#include "kernels/strict_fp.h"

#include "kernels/block32_neon.h"

namespace qvl::neon {
namespace {

struct Q8_0Levels {
  using Block = BlockQ8_0;
  static constexpr bool kHasMin = false;
  static void load(const Block& block, int8x16_t* first, int8x16_t* second) {
    *first = vld1q_s8(block.qs);
    *second = vld1q_s8(block.qs + 16);
  }
};

}  // namespace

void add_q8_0(IsaKernels& table) {
  set_block32_kernels<Q8_0Levels>(table.q8_0);
}

}  // namespace qvl::neon
