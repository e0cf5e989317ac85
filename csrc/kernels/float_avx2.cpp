// F32 / F16 / BF16 weights on AVX2: float dot products (F16C conversion, FMA), register-tiled over
// weight rows and activation rows, and the float GEMM (float_gemm.h on 8-lane vectors), which is
// also the Exact path's on dequantized rows.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/avx2_common.h"
#include "kernels/float_gemm.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/q8_0_encode_avx2.h"
#include "kernels/vnni_panel.h"
#include "simd/vec_avx2.h"

namespace qvl::avx2 {
namespace {

struct LoadF32 {
  static __m256 eight(const uint8_t* row, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i); }
  static float one(const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; }
};

struct LoadF16 {
  static __m256 eight(const uint8_t* row, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  }
  static float one(const uint8_t* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, sizeof(h));
    return half_to_float(h);
  }
};

struct LoadBF16 {
  static __m256 eight(const uint8_t* row, int64_t i) {
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float one(const uint8_t* row, int64_t i) {
    uint16_t b;
    std::memcpy(&b, row + 2 * i, sizeof(b));
    return bf16_to_float(b);
  }
};

template <typename Load>
struct FloatDot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    const float* x[C];
    for (int c = 0; c < C; ++c) x[c] = reinterpret_cast<const float*>(act + c * act_stride);
    __m256 acc[R][C] = {};
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
      __m256 xv[C];
      for (int c = 0; c < C; ++c) xv[c] = _mm256_loadu_ps(x[c] + i);
      for (int r = 0; r < R; ++r) {
        __m256 wv = Load::eight(w + r * w_stride, i);
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
      }
    }
    float tail[R][C] = {};
    for (; i < k; ++i) {
      for (int r = 0; r < R; ++r) {
        for (int c = 0; c < C; ++c) tail[r][c] += Load::one(w + r * w_stride, i) * x[c][i];
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) out[c * out_stride + r] = horizontal_sum(acc[r][c]) + tail[r][c];
    }
  }
};

// Conversion to float is exact for both half formats, so the vector path matches the scalar one bit for bit.
template <typename Load>
void dequantize_half_row(const uint8_t* src, float* dst, int64_t k) {
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) _mm256_storeu_ps(dst + i, Load::eight(src, i));
  for (; i < k; ++i) dst[i] = Load::one(src, i);
}

// Panel levels for the Int8 precision: each block of 32 values encoded on the fly exactly as the
// Q8_0 encoder stores it (signed levels, the fp16-rounded scale), straight from the float weight.
template <typename Load>
struct Q8_0EncodedPanel {
  static constexpr int kBlock = 32, kUnit = 32, kFlush = 1;
  static constexpr bool kSigned = true, kOffset = false;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float*) {
    __m256 x[4];
    for (int i = 0; i < 4; ++i) x[i] = Load::eight(row, unit * kBlock32 + 8 * i);
    scales[0] = _cvtsh_ss(encode_q8_0_block(x, levels));
  }
};

}  // namespace

void pack_vnni_f32(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q8_0EncodedPanel<LoadF32>, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}
void pack_vnni_f16(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q8_0EncodedPanel<LoadF16>, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}
void pack_vnni_bf16(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q8_0EncodedPanel<LoadBF16>, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void add_float(IsaKernels& table) {
  // Panels of 16 rows (two vectors) x 6 activations: 12 accumulators + 2 weight vectors + 1 broadcast.
  table.float_gemm = simd::FloatGemm<Vec, 2, 6>::gemm;
  table.f16.dequantize_row = dequantize_half_row<LoadF16>;
  table.bf16.dequantize_row = dequantize_half_row<LoadBF16>;
  table.f32.dot_tile = dot_tile_tiled<FloatDot<LoadF32>>;
  table.f16.dot_tile = dot_tile_tiled<FloatDot<LoadF16>>;
  table.bf16.dot_tile = dot_tile_tiled<FloatDot<LoadBF16>>;
  // Only the Int8 precision reaches these (float weights are float math otherwise).
  table.f32.gemm_tile = gemm_tile<Q8_0EncodedPanel<LoadF32>>;
  table.f16.gemm_tile = gemm_tile<Q8_0EncodedPanel<LoadF16>>;
  table.bf16.gemm_tile = gemm_tile<Q8_0EncodedPanel<LoadBF16>>;
}

}  // namespace qvl::avx2
