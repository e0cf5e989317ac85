// Q8_0 on AVX2: dequantization, the Fast row-dot kernel (block32_dot_avx2.h) and the matrix-matrix panels.
#include "kernels/strict_fp.h"

#include "kernels/avx2_common.h"
#include "kernels/block32_dot_avx2.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/q8_0_encode_avx2.h"
#include "kernels/vnni_panel.h"

namespace qvl::avx2 {
namespace {

// The stored signed levels.
struct Q8_0Decoder {
  using Block = BlockQ8_0;
  static __m256i levels(const Block& block) { return load32(block.qs); }
};
using Q8_0Levels = SignedLevels<Q8_0Decoder>;

// Panel levels for the matrix-matrix path: the stored signed levels and scale.
struct Q8_0Panel {
  static constexpr int kBlock = 32, kUnit = 32, kFlush = 1;
  static constexpr bool kSigned = true, kOffset = false;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float*) {
    const BlockQ8_0& block = reinterpret_cast<const BlockQ8_0*>(row)[unit];
    std::memcpy(levels, block.qs, kBlock32);
    scales[0] = _cvtsh_ss(block.d);
  }
};

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    // x * d + (-0) == x * d exactly (also for -0), so the shared store adds a negative zero.
    store_levels32(load32(blocks[b].qs), _cvtsh_ss(blocks[b].d), -0.0f, dst + b * kBlock32);
  }
}

// The Q8_0 weight encoder of q8_0.cpp byte for byte, in vectors (q8_0_encode_avx2.h).
void quantize_q8_0(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    __m256 x[4];
    for (int i = 0; i < 4; ++i) x[i] = _mm256_loadu_ps(src + b * kBlock32 + 8 * i);
    blocks[b].d = encode_q8_0_block(x, blocks[b].qs);
  }
}

}  // namespace

void pack_vnni_q8_0(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q8_0Panel, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void add_q8_0(IsaKernels& table) {
  set_type_kernels<Block32Dot<Q8_0Levels>, Q8_0Panel>(table.q8_0, dequantize_q8_0);
  table.q8_0.quantize_row = quantize_q8_0;
}

}  // namespace qvl::avx2
