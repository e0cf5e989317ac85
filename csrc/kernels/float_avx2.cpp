// F32 / F16 / BF16 weights on AVX2: float dot products (F16C conversion, FMA), register-tiled over
// weight rows and activation rows. F32's entry is also the Exact path's GEMM on dequantized rows.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/avx2_common.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"

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

}  // namespace

void add_float(IsaKernels& table) {
  table.f32.dot_tile = dot_tile_tiled<FloatDot<LoadF32>>;
  table.f16.dot_tile = dot_tile_tiled<FloatDot<LoadF16>>;
  table.bf16.dot_tile = dot_tile_tiled<FloatDot<LoadBF16>>;
}

}  // namespace qvl::avx2
