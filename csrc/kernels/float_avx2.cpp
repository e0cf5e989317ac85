// F32 / F16 / BF16 weights on AVX2: float dot products (F16C conversion, FMA), register-tiled over
// weight rows and activation rows. F32's entry is also the Exact path's GEMM on dequantized rows.
#include "kernels/strict_fp.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/avx2_common.h"
#include "kernels/half.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/q8_0_encode_avx2.h"
#include "kernels/vnni_panel.h"

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

// The float GEMM: weight rows transposed into panels of 16 rows (value i of the 16 rows contiguous),
// then a 16 x 6 register tile: per value, two weight vectors meet six broadcast activations in 12
// FMAs, with no horizontal sums. Each output is summed in order over the slice (the caller keeps
// slices short, so the rounding stays that of a short sum).
constexpr int kGemmPanelRows = 16;
constexpr int kGemmActs = 6;

void pack_float_panel(const float* w, size_t w_stride, int rows, int64_t k, float* panel) {
  for (int64_t i = 0; i < k; ++i) {
    float* column = panel + i * kGemmPanelRows;
    for (int r = 0; r < rows; ++r) column[r] = w[r * w_stride + i];
    for (int r = rows; r < kGemmPanelRows; ++r) column[r] = 0.0f;
  }
}

// Writes (or adds) the C x 16 sums of a tile to out, for the panel's `rows` real rows.
template <int C>
void store_panel_sums(const float (&lanes)[C][kGemmPanelRows], float* out, size_t out_stride, int rows,
                      bool accumulate) {
  for (int c = 0; c < C; ++c) {
    float* o = out + c * out_stride;
    for (int r = 0; r < rows; ++r) o[r] = accumulate ? o[r] + lanes[c][r] : lanes[c][r];
  }
}

// The full 16 x 6 tile. Twelve named accumulators: GCC keeps an array of this many vectors in memory,
// storing it on every step.
void float_panel_times_6_acts(int64_t k, const float* panel, const float* x, size_t x_stride, float* out,
                              size_t out_stride, int rows, bool accumulate) {
  __m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0, t4 = t0, t5 = t0;  // panel rows 0..7
  __m256 b0 = t0, b1 = t0, b2 = t0, b3 = t0, b4 = t0, b5 = t0;                    // panel rows 8..15
  const float *x0 = x, *x1 = x + x_stride, *x2 = x + 2 * x_stride, *x3 = x + 3 * x_stride, *x4 = x + 4 * x_stride,
              *x5 = x + 5 * x_stride;
  for (int64_t i = 0; i < k; ++i) {
    __m256 w0 = _mm256_loadu_ps(panel + i * kGemmPanelRows), w1 = _mm256_loadu_ps(panel + i * kGemmPanelRows + 8);
    __m256 v = _mm256_broadcast_ss(x0 + i);
    t0 = _mm256_fmadd_ps(w0, v, t0);
    b0 = _mm256_fmadd_ps(w1, v, b0);
    v = _mm256_broadcast_ss(x1 + i);
    t1 = _mm256_fmadd_ps(w0, v, t1);
    b1 = _mm256_fmadd_ps(w1, v, b1);
    v = _mm256_broadcast_ss(x2 + i);
    t2 = _mm256_fmadd_ps(w0, v, t2);
    b2 = _mm256_fmadd_ps(w1, v, b2);
    v = _mm256_broadcast_ss(x3 + i);
    t3 = _mm256_fmadd_ps(w0, v, t3);
    b3 = _mm256_fmadd_ps(w1, v, b3);
    v = _mm256_broadcast_ss(x4 + i);
    t4 = _mm256_fmadd_ps(w0, v, t4);
    b4 = _mm256_fmadd_ps(w1, v, b4);
    v = _mm256_broadcast_ss(x5 + i);
    t5 = _mm256_fmadd_ps(w0, v, t5);
    b5 = _mm256_fmadd_ps(w1, v, b5);
  }
  alignas(32) float lanes[kGemmActs][kGemmPanelRows];
  const __m256 tops[] = {t0, t1, t2, t3, t4, t5}, bottoms[] = {b0, b1, b2, b3, b4, b5};
  for (int c = 0; c < kGemmActs; ++c) {
    _mm256_store_ps(lanes[c], tops[c]);
    _mm256_store_ps(lanes[c] + 8, bottoms[c]);
  }
  store_panel_sums<kGemmActs>(lanes, out, out_stride, rows, accumulate);
}

// One activation row (the tail of n / 6).
void float_panel_times_1_act(int64_t k, const float* panel, const float* x, float* out, int rows, bool accumulate) {
  __m256 top = _mm256_setzero_ps(), bottom = top;
  for (int64_t i = 0; i < k; ++i) {
    __m256 v = _mm256_broadcast_ss(x + i);
    top = _mm256_fmadd_ps(_mm256_loadu_ps(panel + i * kGemmPanelRows), v, top);
    bottom = _mm256_fmadd_ps(_mm256_loadu_ps(panel + i * kGemmPanelRows + 8), v, bottom);
  }
  alignas(32) float lanes[1][kGemmPanelRows];
  _mm256_store_ps(lanes[0], top);
  _mm256_store_ps(lanes[0] + 8, bottom);
  store_panel_sums<1>(lanes, out, 0, rows, accumulate);
}

// Activation rows per pass over the packed panels: their k-slice (at most 256 floats each) stays in L2
// while every panel of the chunk meets it.
constexpr int64_t kGemmActTile = 96;

void float_gemm(int64_t k, const float* w, size_t w_stride, int64_t n_rows, const float* x, size_t x_stride, int64_t n,
                float* out, size_t out_stride, bool accumulate) {
  const int64_t n_panels = (n_rows + kGemmPanelRows - 1) / kGemmPanelRows;
  const size_t panel_floats = static_cast<size_t>(k) * kGemmPanelRows;
  thread_local std::vector<float> panel_memory;
  if (panel_memory.size() < panel_floats * n_panels) panel_memory.resize(panel_floats * n_panels);
  auto panel_rows = [&](int64_t p) { return static_cast<int>(std::min<int64_t>(kGemmPanelRows, n_rows - p * kGemmPanelRows)); };
  for (int64_t p = 0; p < n_panels; ++p) {
    pack_float_panel(w + p * kGemmPanelRows * w_stride, w_stride, panel_rows(p), k, panel_memory.data() + p * panel_floats);
  }
  for (int64_t j0 = 0; j0 < n; j0 += kGemmActTile) {
    const int64_t j_end = std::min(n, j0 + kGemmActTile);
    for (int64_t p = 0; p < n_panels; ++p) {
      const float* panel = panel_memory.data() + p * panel_floats;
      float* out_p = out + p * kGemmPanelRows;
      int rows = panel_rows(p);
      int64_t j = j0;
      for (; j + kGemmActs <= j_end; j += kGemmActs) {
        float_panel_times_6_acts(k, panel, x + j * x_stride, x_stride, out_p + j * out_stride, out_stride, rows,
                                 accumulate);
      }
      for (; j < j_end; ++j) float_panel_times_1_act(k, panel, x + j * x_stride, out_p + j * out_stride, rows, accumulate);
    }
  }
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
  table.float_gemm = float_gemm;
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
