// Q8_0 on NEON: the Fast dot product (vdotq_s32), register-tiled over weight and activation rows, and
// the matrix-matrix panels (panel_neon.h).
#include "kernels/strict_fp.h"

#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {
namespace {

struct Q8_0Dot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    float32x4_t acc[R][C];
    zero(acc);
    for (int64_t b = 0; b < k / kBlock32; ++b) {
      for (int r = 0; r < R; ++r) {
        const BlockQ8_0& block = reinterpret_cast<const BlockQ8_0*>(w + r * w_stride)[b];
        int8x16_t first = vld1q_s8(block.qs), second = vld1q_s8(block.qs + 16);
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

// Panel levels for the matrix-matrix path: the stored signed levels and scale.
struct Q8_0Panel {
  static constexpr int kBlock = 32, kUnit = 32;
  static constexpr bool kOffset = false;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float*) {
    const BlockQ8_0& block = reinterpret_cast<const BlockQ8_0*>(row)[unit];
    vst1q_s8(levels, vld1q_s8(block.qs));
    vst1q_s8(levels + 16, vld1q_s8(block.qs + 16));
    scales[0] = fp16(block.d);
  }
};

}  // namespace

void add_q8_0(IsaKernels& table) {
  table.q8_0.dot_tile = dot_tile_tiled<Q8_0Dot>;
  table.q8_0.gemm_tile = gemm_tile<Q8_0Panel>;
  table.q8_0.gemm_act_format = ActFormat::Q8_32;
}

}  // namespace qvl::neon
