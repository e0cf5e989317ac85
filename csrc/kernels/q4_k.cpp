// Q4_K: super-blocks of 256 values in 8 sub-blocks of 32, x = d * sc * q - dmin * mn with q in [0, 15]
// and 6-bit sc, mn per sub-block. Scalar reference (k_quant_reference.h over Q4_K's level layout):
// dequantize, quantize (least-squares scale and min search per sub-block) and the integer dot product
// against ActQ8_K activations.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/k_quant_reference.h"

namespace qvl::scalar {
namespace {

// Level l of sub-block s: sub-blocks 2j and 2j+1 share the 32 bytes at 32j (low, high nibble).
struct Q4_KLayout {
  using Block = BlockQ4_K;
  static constexpr int kTop = 15;
  static int level(const Block& block, int s, int l) { return (block.qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F; }
  static void clear(Block& block) { std::memset(block.qs, 0, sizeof(block.qs)); }
  static void set_level(Block& block, int s, int l, int q) {
    block.qs[32 * (s / 2) + l] |= static_cast<uint8_t>(q << (4 * (s % 2)));
  }
};

}  // namespace

void add_q4_k(IsaKernels& table) {
  table.q4_k = k_quant::kernels<Q4_KLayout>();
}

}  // namespace qvl::scalar
