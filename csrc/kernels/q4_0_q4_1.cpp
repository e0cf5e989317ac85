// Q4_0 (x = d * (q - 8)) and Q4_1 (x = d * q + m): blocks of 32 4-bit values. Scalar reference
// (block32_reference.h over their nibble layout): dequantize, quantize (ggml / gguf-py's encoding,
// byte for byte) and the integer dot products.
#include "kernels/strict_fp.h"

#include "kernels/block32_reference.h"

namespace qvl::scalar {
namespace {

// Value i of a block: the low nibble of qs[i] for i < 16, the high nibble of qs[i - 16] after.
template <typename BlockT, bool HasMin>
struct NibbleLayout : block32::LayoutOf<BlockT, 15, HasMin> {
  using Block = BlockT;
  static void levels(const Block& block, int* out) {
    for (int i = 0; i < 16; ++i) {
      out[i] = block.qs[i] & 0x0F;
      out[i + 16] = block.qs[i] >> 4;
    }
  }
  static void pack(const uint8_t* q, Block& block) {
    for (int i = 0; i < 16; ++i) block.qs[i] = static_cast<uint8_t>(q[i] | (q[i + 16] << 4));
  }
};
using Q4_0Layout = NibbleLayout<BlockQ4_0, false>;
using Q4_1Layout = NibbleLayout<BlockQ4_1, true>;

}  // namespace

void add_q4_0_q4_1(IsaKernels& table) {
  table.q4_0 = block32::kernels<Q4_0Layout>();
  table.q4_1 = block32::kernels<Q4_1Layout>();
}

}  // namespace qvl::scalar
