// The 32-value block types on NEON (Q8_0, Q4_0/Q4_1, Q5_0/Q5_1, include only from *_neon.cpp): the
// row-dot kernel and the panel decoder, shared; each type's file says only how a block becomes its
// 32 signed levels.
//
// Levels provides: using Block (with the fp16 scale d, and the fp16 min m where kHasMin);
// static constexpr bool kHasMin; static void load(const Block&, int8x16_t* first, int8x16_t* second):
// levels 0..15 and 16..31 with any zero point already taken off (x = d * level, + m where kHasMin).
#pragma once
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {

// The Fast dot products (vdotq_s32), register-tiled over weight and activation rows (tile_loop.h).
template <typename Levels>
struct Block32Dot {
  using Block = typename Levels::Block;

  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    float32x4_t acc[R][C];
    zero(acc);
    float offsets[R][C] = {};  // the mins against the activation blocks' sums
    for (int64_t b = 0; b < k / kBlock32; ++b) {
      for (int r = 0; r < R; ++r) {
        const Block& block = reinterpret_cast<const Block*>(w + r * w_stride)[b];
        int8x16_t first, second;
        Levels::load(block, &first, &second);
        const float scale = fp16(block.d);
        float min = 0.0f;
        if constexpr (Levels::kHasMin) min = fp16(block.m);
        for (int c = 0; c < C; ++c) {
          const ActQ8_32& a = reinterpret_cast<const ActQ8_32*>(act + c * act_stride)[b];
          acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(dot32(first, second, a.qs)), scale * a.d);
          if constexpr (Levels::kHasMin) offsets[r][c] += min * a.sum;
        }
      }
    }
    if constexpr (Levels::kHasMin) {
      for (int r = 0; r < R; ++r) {
        for (int c = 0; c < C; ++c) out[c * out_stride + r] = vaddvq_f32(acc[r][c]) + offsets[r][c];
      }
    } else {
      store_sums<R, C>(acc, out, out_stride);
    }
  }
};

// The panel decoder of the matrix-matrix path (panel_neon.h): the same levels, the scale, the min as
// offset.
template <typename Levels>
struct Block32Panel {
  using Block = typename Levels::Block;
  static constexpr int kBlock = 32, kUnit = 32;
  static constexpr bool kOffset = Levels::kHasMin;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const Block& block = reinterpret_cast<const Block*>(row)[unit];
    int8x16_t first, second;
    Levels::load(block, &first, &second);
    vst1q_s8(levels, first);
    vst1q_s8(levels + 16, second);
    scales[0] = fp16(block.d);
    if constexpr (Levels::kHasMin) offsets[0] = fp16(block.m);
  }
};

// Levels for a type whose 32 levels Load reads out of its block, less `ZeroPoint` (the zero point of
// Q4_0 / Q5_0; 0 for Q4_1 / Q5_1, which keep their unsigned levels and a min).
template <typename BlockT, bool HasMin, int ZeroPoint,
          void (*Load)(const BlockT&, int8_t offset, int8x16_t* first, int8x16_t* second)>
struct LevelsOf {
  using Block = BlockT;
  static constexpr bool kHasMin = HasMin;
  static void load(const Block& block, int8x16_t* first, int8x16_t* second) { Load(block, ZeroPoint, first, second); }
};

// A 32-value type's Fast kernels for Levels: the row dots and the matrix-matrix panels.
template <typename Levels>
void set_block32_kernels(TypeKernels& kernels) {
  kernels.dot_tile = dot_tile_tiled<Block32Dot<Levels>>;
  kernels.gemm_tile = gemm_tile<Block32Panel<Levels>>;
}

}  // namespace qvl::neon
