// NEON pieces of the Q4_K and Q5_K kernels (q4_k_neon.cpp, q5_k_neon.cpp), written over a type's
// level decoder (Levels::decode: a super-block into 16 vectors of levels in value order): the Fast dot
// product against ActQ8_K (vdotq_s32, each sub-block's sums times its scale and the activation's
// multiplier; the mins meet the activation's 16-value sums) and the matrix-matrix panel decoder
// (panel_neon.h). Include only from *_neon.cpp.
#pragma once
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {

// levels[g] = values 16g .. 16g+15 of a Q4_K / Q5_K super-block (without the fifth bit).
inline void nibble_levels_k(const uint8_t* qs, uint8x16_t (&levels)[16]) {
  const uint8x16_t low_mask = vdupq_n_u8(0x0F);
  for (int j = 0; j < 4; ++j) {
    uint8x16_t first = vld1q_u8(qs + 32 * j), second = vld1q_u8(qs + 32 * j + 16);
    levels[4 * j] = vandq_u8(first, low_mask);
    levels[4 * j + 1] = vandq_u8(second, low_mask);
    levels[4 * j + 2] = vshrq_n_u8(first, 4);
    levels[4 * j + 3] = vshrq_n_u8(second, 4);
  }
}

template <typename Levels>
struct KQuantDot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    float32x4_t acc[R][C];
    zero(acc);
    float offsets[R][C] = {};
    for (int64_t b = 0; b < k / kBlockK; ++b) {
      for (int r = 0; r < R; ++r) {
        const auto& block = reinterpret_cast<const typename Levels::Block*>(w + r * w_stride)[b];
        uint8_t scale[8], min[8];
        for (int s = 0; s < 8; ++s) unpack_scale_min_k(block.scales, s, &scale[s], &min[s]);
        uint8x16_t levels[16];
        Levels::decode(block, levels);
        float d = fp16(block.d), dmin = fp16(block.dmin);
        for (int c = 0; c < C; ++c) {
          const ActQ8_K& a = reinterpret_cast<const ActQ8_K*>(act + c * act_stride)[b];
          int32x4_t sums = vdupq_n_s32(0);
          int32_t min_sum = 0;
          for (int s = 0; s < 8; ++s) {
            int32x4_t sub = dot32(vreinterpretq_s8_u8(levels[2 * s]), vreinterpretq_s8_u8(levels[2 * s + 1]),
                                  a.qs + 32 * s);
            const int32_t m = a.multipliers[s];
            sums = vmlaq_n_s32(sums, sub, scale[s] * m);
            min_sum += min[s] * m * (a.bsums[2 * s] + a.bsums[2 * s + 1]);
          }
          acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(sums), d * a.d);
          offsets[r][c] -= dmin * a.d * static_cast<float>(min_sum);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) out[c * out_stride + r] = vaddvq_f32(acc[r][c]) + offsets[r][c];
    }
  }
};

// Panel levels: sub-block s's unsigned levels with scale d * sc[s] and offset -dmin * mn[s].
template <typename Levels>
struct KQuantPanel {
  static constexpr int kBlock = 32, kUnit = kBlockK;
  static constexpr bool kOffset = true;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const auto& block = reinterpret_cast<const typename Levels::Block*>(row)[unit];
    uint8x16_t values[16];
    Levels::decode(block, values);
    for (int g = 0; g < 16; ++g) vst1q_s8(levels + 16 * g, vreinterpretq_s8_u8(values[g]));
    sub_block_scales_offsets_k(block.scales, fp16(block.d), fp16(block.dmin), scales, offsets);
  }
};

// A K-quant's Fast kernels: the row dots (against Q8_K) and the matrix-matrix panels (against Q8_32).
template <typename Levels>
void set_k_quant_kernels(TypeKernels& kernels) {
  kernels.dot_tile = dot_tile_tiled<KQuantDot<Levels>>;
  kernels.gemm_tile = gemm_tile<KQuantPanel<Levels>>;
  kernels.gemm_act_format = ActFormat::Q8_32;
}

}  // namespace qvl::neon
