// Q8_0 on AVX2: dequantization and the Fast dot product, register-tiled over weight rows and activation rows.
#include "kernels/strict_fp.h"

#include "kernels/avx2_common.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"

namespace qvl::avx2 {
namespace {

struct Q8_0Dot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    __m256 acc[R][C] = {};
    for (int64_t b = 0; b < k / kBlock32; ++b) {
      prefetch_next_tile<R>(w, w_stride, b, sizeof(BlockQ8_0));
      __m256i a_levels[C];
      float a_scale[C];
      for (int c = 0; c < C; ++c) {
        const ActQ8_32& a = reinterpret_cast<const ActQ8_32*>(act + c * act_stride)[b];
        a_levels[c] = load32(a.qs);
        a_scale[c] = a.d;
      }
      for (int r = 0; r < R; ++r) {
        const BlockQ8_0& block = reinterpret_cast<const BlockQ8_0*>(w + r * w_stride)[b];
        __m256i levels = load32(block.qs);
        __m256i magnitude = _mm256_sign_epi8(levels, levels);
        float scale = _cvtsh_ss(block.d);
        for (int c = 0; c < C; ++c) {
          __m256i sums = dot_u8_s8(magnitude, _mm256_sign_epi8(a_levels[c], levels));
          acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(scale * a_scale[c]), _mm256_cvtepi32_ps(sums), acc[r][c]);
        }
      }
    }
    store_sums<R, C>(acc, out, out_stride);
  }
};

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

}  // namespace

void add_q8_0(IsaKernels& table) {
  table.q8_0.dequantize_row = dequantize_q8_0;
  table.q8_0.dot_tile = dot_tile_tiled<Q8_0Dot>;
  table.q8_0.gemm_tile = gemm_tile<Q8_0Panel>;
  table.q8_0.gemm_act_format = ActFormat::Q8_32;
}

}  // namespace qvl::avx2
