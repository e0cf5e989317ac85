// Q6_K on NEON: the Fast dot product against ActQ8_K (vdotq_s32). Each weight row's super-block is
// decoded once into 16 vectors of signed levels (q - 32) in value order, then dotted with every
// activation row of the tile, each 16-value group times its int8 scale and the activation's sub-block
// multiplier. Also its matrix-matrix panels
// (panel_neon.h).
#include "kernels/strict_fp.h"

#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {
namespace {

// levels[g] = values 16g .. 16g+15 minus 32; see BlockQ6_K for the bit layout.
inline void levels6(const BlockQ6_K& block, int8x16_t (&levels)[16]) {
  const uint8x16_t low_mask = vdupq_n_u8(0x0F), pair_mask = vdupq_n_u8(0x03);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = block.ql + 64 * h;
    const uint8_t* qh = block.qh + 32 * h;
    uint8x16_t high[2] = {vld1q_u8(qh), vld1q_u8(qh + 16)};
    for (int t = 0; t < 4; ++t) {  // 32-value chunk t of this half
      for (int part = 0; part < 2; ++part) {
        uint8x16_t packed = vld1q_u8(ql + 32 * (t % 2) + 16 * part);
        uint8x16_t low = t < 2 ? vandq_u8(packed, low_mask) : vshrq_n_u8(packed, 4);
        uint8x16_t top = vandq_u8(vshlq_u8(high[part], vdupq_n_s8(static_cast<int8_t>(-2 * t))), pair_mask);
        uint8x16_t level = vorrq_u8(low, vshlq_n_u8(top, 4));
        levels[8 * h + 2 * t + part] = vsubq_s8(vreinterpretq_s8_u8(level), vdupq_n_s8(32));
      }
    }
  }
}

struct Q6_KDot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    float32x4_t acc[R][C];
    zero(acc);
    for (int64_t b = 0; b < k / kBlockK; ++b) {
      for (int r = 0; r < R; ++r) {
        const BlockQ6_K& block = reinterpret_cast<const BlockQ6_K*>(w + r * w_stride)[b];
        int8x16_t levels[16];
        levels6(block, levels);
        float d = fp16(block.d);
        for (int c = 0; c < C; ++c) {
          const ActQ8_K& a = reinterpret_cast<const ActQ8_K*>(act + c * act_stride)[b];
          int32x4_t sums = vdupq_n_s32(0);
          for (int g = 0; g < 16; ++g) {
            int32x4_t group = vdotq_s32(vdupq_n_s32(0), levels[g], vld1q_s8(a.qs + 16 * g));
            sums = vmlaq_n_s32(sums, group, block.scales[g] * a.multipliers[g / 2]);
          }
          acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(sums), d * a.d);
        }
      }
    }
    store_sums<R, C>(acc, out, out_stride);
  }
};

// Panel levels: the signed levels q - 32 in blocks of 16 (one scale each), scale d * sc (exact in
// float: an fp16 times an int8), no offset.
struct Q6_KPanel {
  static constexpr int kBlock = 16, kUnit = kBlockK;
  static constexpr bool kOffset = false;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float*) {
    const BlockQ6_K& block = reinterpret_cast<const BlockQ6_K*>(row)[unit];
    int8x16_t values[16];
    levels6(block, values);
    for (int g = 0; g < 16; ++g) vst1q_s8(levels + 16 * g, values[g]);
    float d = fp16(block.d);
    for (int g = 0; g < 16; ++g) scales[g] = d * static_cast<float>(block.scales[g]);
  }
};

}  // namespace

void add_q6_k(IsaKernels& table) {
  table.q6_k.dot_tile = dot_tile_tiled<Q6_KDot>;
  table.q6_k.gemm_tile = gemm_tile<Q6_KPanel>;
  table.q6_k.gemm_act_format = ActFormat::Q8_16;
}

}  // namespace qvl::neon
