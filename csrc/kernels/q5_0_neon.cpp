// Q5_0 and Q5_1 on NEON: the Fast dot products (vdotq_s32), register-tiled over weight and activation
// rows, and the matrix-matrix panels (panel_neon.h).
#include "kernels/strict_fp.h"

#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {
namespace {

// The 32 5-bit levels of a block, minus `offset`: nibbles plus 16 where the high bit is set.
inline void levels5(const uint8_t* qs, const uint8_t* qh, int8_t offset, int8x16_t* first, int8x16_t* second) {
  uint8x16_t packed = vld1q_u8(qs);
  uint8x16_t low = vorrq_u8(vandq_u8(packed, vdupq_n_u8(0x0F)), bits_to_16s(qh[0], qh[1]));
  uint8x16_t high = vorrq_u8(vshrq_n_u8(packed, 4), bits_to_16s(qh[2], qh[3]));
  *first = vsubq_s8(vreinterpretq_s8_u8(low), vdupq_n_s8(offset));
  *second = vsubq_s8(vreinterpretq_s8_u8(high), vdupq_n_s8(offset));
}

struct Q5_0Dot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    float32x4_t acc[R][C];
    zero(acc);
    for (int64_t b = 0; b < k / kBlock32; ++b) {
      for (int r = 0; r < R; ++r) {
        const BlockQ5_0& block = reinterpret_cast<const BlockQ5_0*>(w + r * w_stride)[b];
        int8x16_t first, second;
        levels5(block.qs, block.qh, 16, &first, &second);
        float scale = fp16(block.d);
        for (int c = 0; c < C; ++c) {
          const ActQ8_32& a = reinterpret_cast<const ActQ8_32*>(act + c * act_stride)[b];
          acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(dot32(first, second, a.qs)), scale * a.d);
        }
      }
    }
    store_sums<R, C>(acc, out, out_stride);
  }
};

struct Q5_1Dot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    float32x4_t acc[R][C];
    zero(acc);
    float offsets[R][C] = {};
    for (int64_t b = 0; b < k / kBlock32; ++b) {
      for (int r = 0; r < R; ++r) {
        const BlockQ5_1& block = reinterpret_cast<const BlockQ5_1*>(w + r * w_stride)[b];
        int8x16_t first, second;
        levels5(block.qs, block.qh, 0, &first, &second);
        float scale = fp16(block.d), min = fp16(block.m);
        for (int c = 0; c < C; ++c) {
          const ActQ8_32& a = reinterpret_cast<const ActQ8_32*>(act + c * act_stride)[b];
          acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(dot32(first, second, a.qs)), scale * a.d);
          offsets[r][c] += min * a.sum;
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) out[c * out_stride + r] = vaddvq_f32(acc[r][c]) + offsets[r][c];
    }
  }
};

// Panel levels: Q5_0's levels minus its zero point of 16 (no offset), Q5_1's levels with the min as offset.
template <typename Block, bool HasMin>
struct Q5Panel {
  static constexpr int kBlock = 32, kUnit = 32;
  static constexpr bool kOffset = HasMin;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const Block& block = reinterpret_cast<const Block*>(row)[unit];
    int8x16_t first, second;
    levels5(block.qs, block.qh, HasMin ? 0 : 16, &first, &second);
    vst1q_s8(levels, first);
    vst1q_s8(levels + 16, second);
    scales[0] = fp16(block.d);
    if constexpr (HasMin) offsets[0] = fp16(block.m);
  }
};

}  // namespace

void add_q5_0_q5_1(IsaKernels& table) {
  table.q5_0.dot_tile = dot_tile_tiled<Q5_0Dot>;
  table.q5_1.dot_tile = dot_tile_tiled<Q5_1Dot>;
  table.q5_0.gemm_tile = gemm_tile<Q5Panel<BlockQ5_0, false>>;
  table.q5_1.gemm_tile = gemm_tile<Q5Panel<BlockQ5_1, true>>;
}

}  // namespace qvl::neon
