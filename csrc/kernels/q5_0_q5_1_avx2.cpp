// Q5_0 and Q5_1 on AVX2: dequantization and the Fast dot products, register-tiled over weight rows and activation rows.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/avx2_common.h"
#include "kernels/block32_dot_avx2.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/vnni_panel.h"

namespace qvl::avx2 {
namespace {

// The 32 5-bit levels of a block: nibbles plus 16 where the block's high bit is set.
inline __m256i levels5(const uint8_t* qs, const uint8_t* qh) {
  uint32_t high;
  std::memcpy(&high, qh, sizeof(high));
  return _mm256_or_si256(split_nibbles(qs), _mm256_and_si256(bits_to_bytes(high), _mm256_set1_epi8(0x10)));
}

// Q5_0's levels minus its zero point of 16, signed (Block32Dot, four rows at a time); Q5_1's unsigned
// levels (MinBlockDot).
struct Q5_0Decoder {
  using Block = BlockQ5_0;
  static __m256i levels(const Block& block) {
    return _mm256_sub_epi8(levels5(block.qs, block.qh), _mm256_set1_epi8(16));
  }
};
struct Q5_1Decoder {
  using Block = BlockQ5_1;
  static __m256i levels(const Block& block) { return levels5(block.qs, block.qh); }
};

// Panel levels: the unsigned 5-bit levels; the zero point of 16 (Q5_0) or the min (Q5_1) is the offset.
template <typename Block, bool HasMin>
struct Q5Panel {
  static constexpr int kBlock = 32, kUnit = 32, kFlush = 4;  // 4 * 2 * 31 * 127 < 32768
  static constexpr bool kSigned = false, kOffset = true;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const Block& block = reinterpret_cast<const Block*>(row)[unit];
    _mm256_store_si256(reinterpret_cast<__m256i*>(levels), levels5(block.qs, block.qh));
    scales[0] = _cvtsh_ss(block.d);
    if constexpr (HasMin) {
      offsets[0] = _cvtsh_ss(reinterpret_cast<const BlockQ5_1&>(block).m);
    } else {
      offsets[0] = -16.0f * scales[0];
    }
  }
};

void dequantize_q5_0(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    __m256i levels = _mm256_sub_epi8(levels5(blocks[b].qs, blocks[b].qh), _mm256_set1_epi8(16));
    store_levels32(levels, _cvtsh_ss(blocks[b].d), -0.0f, dst + b * kBlock32);
  }
}

void dequantize_q5_1(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ5_1*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    store_levels32(levels5(blocks[b].qs, blocks[b].qh), _cvtsh_ss(blocks[b].d), _cvtsh_ss(blocks[b].m),
                   dst + b * kBlock32);
  }
}

}  // namespace

void pack_vnni_q5_0(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q5Panel<BlockQ5_0, false>, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void pack_vnni_q5_1(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q5Panel<BlockQ5_1, true>, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void add_q5_0_q5_1(IsaKernels& table) {
  set_type_kernels<Block32Dot<SignedLevels<Q5_0Decoder>>, Q5Panel<BlockQ5_0, false>>(table.q5_0, dequantize_q5_0);
  set_type_kernels<MinBlockDot<Q5_1Decoder>, Q5Panel<BlockQ5_1, true>>(table.q5_1, dequantize_q5_1);
}

}  // namespace qvl::avx2
