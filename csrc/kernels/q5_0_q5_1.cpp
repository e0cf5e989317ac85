// Q5_0 (x = d * (q - 16)) and Q5_1 (x = d * q + m): blocks of 32 5-bit values, the low 4 bits packed
// as in Q4_0 and the fifth bits in a 32-bit mask. Scalar reference (block32_reference.h over their
// level layout): dequantize, quantize (ggml / gguf-py's encoding, byte for byte) and the integer dot
// products.
#include "kernels/strict_fp.h"

#include "kernels/block32_reference.h"

namespace qvl::scalar {
namespace {

// Value i: the nibble as in Q4_0, plus bit i of the little-endian qh as bit 4.
template <typename BlockT, bool HasMin>
struct FiveBitLayout : block32::LayoutOf<BlockT, 31, HasMin> {
  using Block = BlockT;
  static void levels(const Block& block, int* out) {
    const uint32_t high = static_cast<uint32_t>(block.qh[0]) | (static_cast<uint32_t>(block.qh[1]) << 8) |
                          (static_cast<uint32_t>(block.qh[2]) << 16) | (static_cast<uint32_t>(block.qh[3]) << 24);
    for (int i = 0; i < 16; ++i) {
      out[i] = (block.qs[i] & 0x0F) | static_cast<int>(((high >> i) & 1) << 4);
      out[i + 16] = (block.qs[i] >> 4) | static_cast<int>(((high >> (i + 16)) & 1) << 4);
    }
  }
  static void pack(const uint8_t* q, Block& block) {
    uint32_t mask = 0;
    for (int i = 0; i < 16; ++i) block.qs[i] = static_cast<uint8_t>((q[i] & 0x0F) | ((q[i + 16] & 0x0F) << 4));
    for (int i = 0; i < kBlock32; ++i) mask |= static_cast<uint32_t>(q[i] >> 4) << i;
    for (int byte = 0; byte < 4; ++byte) block.qh[byte] = static_cast<uint8_t>(mask >> (8 * byte));
  }
};
using Q5_0Layout = FiveBitLayout<BlockQ5_0, false>;
using Q5_1Layout = FiveBitLayout<BlockQ5_1, true>;

}  // namespace

void add_q5_0_q5_1(IsaKernels& table) {
  table.q5_0 = block32::kernels<Q5_0Layout>();
  table.q5_1 = block32::kernels<Q5_1Layout>();
}

}  // namespace qvl::scalar
