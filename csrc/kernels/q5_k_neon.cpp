// Q5_K on NEON: the Fast dot product against ActQ8_K and the matrix-matrix panels (k_quant_neon.h)
// over Q5_K's levels: Q4_K's nibbles plus a fifth bit from qh.
#include "kernels/strict_fp.h"

#include "kernels/k_quant_neon.h"

namespace qvl::neon {
namespace {

// Adds 16 to each level whose bit s (sub-block s = g / 2) is set in qh[value within the sub-block].
inline void add_fifth_bits(const uint8_t* qh, uint8x16_t (&levels)[16]) {
  uint8x16_t first = vld1q_u8(qh), second = vld1q_u8(qh + 16);
  for (int s = 0; s < 8; ++s) {
    uint8x16_t bit = vdupq_n_u8(static_cast<uint8_t>(1 << s)), sixteen = vdupq_n_u8(16);
    levels[2 * s] = vorrq_u8(levels[2 * s], vandq_u8(vtstq_u8(first, bit), sixteen));
    levels[2 * s + 1] = vorrq_u8(levels[2 * s + 1], vandq_u8(vtstq_u8(second, bit), sixteen));
  }
}

struct Q5_KLevels {
  using Block = BlockQ5_K;
  static void decode(const Block& block, uint8x16_t (&levels)[16]) {
    nibble_levels_k(block.qs, levels);
    add_fifth_bits(block.qh, levels);
  }
};

}  // namespace

void add_q5_k(IsaKernels& table) { set_k_quant_kernels<Q5_KLevels>(table.q5_k); }

}  // namespace qvl::neon
