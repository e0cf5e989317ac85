// F32 / F16 / BF16 weights on NEON: float dot products with FMA, register-tiled over weight rows and
// activation rows, and the float GEMM (float_gemm.h on 4-lane vectors), which is also the Exact path's
// on dequantized rows.
#include "kernels/strict_fp.h"

#include "kernels/float_gemm.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/neon_common.h"
#include "simd/vec_neon.h"

namespace qvl::neon {
namespace {

struct LoadF32 {
  static float32x4_t four(const uint8_t* row, int64_t i) { return vld1q_f32(reinterpret_cast<const float*>(row) + i); }
  static float one(const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; }
};

struct LoadF16 {
  static float32x4_t four(const uint8_t* row, int64_t i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + i)));
  }
  static float one(const uint8_t* row, int64_t i) { return fp16(reinterpret_cast<const uint16_t*>(row)[i]); }
};

struct LoadBF16 {
  static float32x4_t four(const uint8_t* row, int64_t i) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + i), 16));
  }
  static float one(const uint8_t* row, int64_t i) { return bf16_to_float(reinterpret_cast<const uint16_t*>(row)[i]); }
};

template <typename Load>
struct FloatDot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    const float* x[C];
    for (int c = 0; c < C; ++c) x[c] = reinterpret_cast<const float*>(act + c * act_stride);
    // Two accumulators per pair, as the 8 lanes of the AVX2 path: the same rounding behaviour.
    float32x4_t even[R][C], odd[R][C];
    zero(even);
    zero(odd);
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
      for (int r = 0; r < R; ++r) {
        float32x4_t w0 = Load::four(w + r * w_stride, i), w1 = Load::four(w + r * w_stride, i + 4);
        for (int c = 0; c < C; ++c) {
          even[r][c] = vfmaq_f32(even[r][c], w0, vld1q_f32(x[c] + i));
          odd[r][c] = vfmaq_f32(odd[r][c], w1, vld1q_f32(x[c] + i + 4));
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) {
        float sum = vaddvq_f32(vaddq_f32(even[r][c], odd[r][c]));
        for (int64_t t = i; t < k; ++t) sum += Load::one(w + r * w_stride, t) * x[c][t];
        out[c * out_stride + r] = sum;
      }
    }
  }
};

}  // namespace

void add_float(IsaKernels& table) {
  // Panels of 16 rows (four vectors) x 6 activations: 24 accumulators + 4 weight vectors + 1 broadcast.
  table.float_gemm = simd::FloatGemm<Vec, 4, 6>::gemm;
  table.f32.dot_tile = dot_tile_tiled<FloatDot<LoadF32>>;
  table.f16.dot_tile = dot_tile_tiled<FloatDot<LoadF16>>;
  table.bf16.dot_tile = dot_tile_tiled<FloatDot<LoadBF16>>;
}

}  // namespace qvl::neon
