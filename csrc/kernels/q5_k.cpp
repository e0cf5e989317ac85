// Q5_K: as Q4_K with 5-bit levels (q in [0, 31]); bit s of qh[l] is bit 4 of level l of sub-block s.
// Scalar reference (k_quant_reference.h over Q5_K's level layout): dequantize, quantize (least-squares
// scale and min search) and the integer dot product.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/k_quant_reference.h"

namespace qvl::scalar {
namespace {

// The low 4 bits as Q4_K's nibbles, the fifth in qh.
struct Q5_KLayout {
  using Block = BlockQ5_K;
  static constexpr int kTop = 31;
  static int level(const Block& block, int s, int l) {
    int low = (block.qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F;
    return low | (((block.qh[l] >> s) & 1) << 4);
  }
  static void clear(Block& block) {
    std::memset(block.qs, 0, sizeof(block.qs));
    std::memset(block.qh, 0, sizeof(block.qh));
  }
  static void set_level(Block& block, int s, int l, int q) {
    block.qs[32 * (s / 2) + l] |= static_cast<uint8_t>((q & 0x0F) << (4 * (s % 2)));
    block.qh[l] |= static_cast<uint8_t>((q >> 4) << s);
  }
};

}  // namespace

void add_q5_k(IsaKernels& table) {
  table.q5_k = k_quant::kernels<Q5_KLayout>();
}

}  // namespace qvl::scalar
