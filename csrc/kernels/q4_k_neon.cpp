// Q4_K on NEON: the Fast dot product against ActQ8_K and the matrix-matrix panels (k_quant_neon.h)
// over Q4_K's levels, the super-block's nibbles.
#include "kernels/strict_fp.h"

#include "kernels/k_quant_neon.h"

namespace qvl::neon {
namespace {

struct Q4_KLevels {
  using Block = BlockQ4_K;
  static void decode(const Block& block, uint8x16_t (&levels)[16]) { nibble_levels_k(block.qs, levels); }
};

}  // namespace

void add_q4_k(IsaKernels& table) { set_k_quant_kernels<Q4_KLevels>(table.q4_k); }

}  // namespace qvl::neon
