// The Exact path's float GEMM on AVX-512 (also F16 / BF16 / F32 weights at any precision, on their
// dequantized rows). Same contract as the AVX2 one; the wider registers allow a 32 x 12 register tile.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/transpose_avx512.h"

namespace qvl::avx512 {
namespace {

// Weight rows are transposed into panels of 32 rows (value i of the 32 rows contiguous: two vectors).
// The last panel of a call is 16 rows wide when at most 16 rows are left, so a 16-row remainder (the
// caller's row granule) costs no wasted FMAs. Per value, the two weight vectors meet 12 broadcast
// activations in 24 FMAs into 24 accumulators: 24 + 2 + 1 of the 32 zmm registers, and two vector
// loads plus 12 broadcasts per 24 FMAs keep the load ports below the FMA ports' pace. There are no
// horizontal sums: each activation's 32 outputs are contiguous and are stored as two vectors.
constexpr int kVector = 16;
constexpr int kPanelRows = 2 * kVector;
constexpr int kGemmActs = 12;

// Activation rows per pass over the packed panels: their k-slice (at most 256 floats each, by the
// caller's slicing) stays in L2 while every panel meets it; a multiple of kGemmActs.
constexpr int64_t kGemmActTile = 96;

int panel_width(int rows) { return rows > kVector ? kPanelRows : kVector; }

// Packs `rows` (at most 16) weight rows into the 16 lanes starting at panel + lane0 of each value's
// `width` floats, zeros in the lanes past `rows`: whole blocks of 16 values through a register
// transpose (a scalar transpose took a tenth of the GEMM's time), the remainder one by one.
void pack_rows_into_lanes(const float* w, size_t w_stride, int rows, int64_t k, float* panel, int width, int lane0) {
  int64_t i = 0;
  for (; i + kVector <= k; i += kVector) {
    __m512 v[kVector];
#pragma GCC unroll 16
    for (int r = 0; r < kVector; ++r) v[r] = r < rows ? _mm512_loadu_ps(w + r * w_stride + i) : _mm512_setzero_ps();
    transpose_16x16(v);
#pragma GCC unroll 16
    for (int j = 0; j < kVector; ++j) _mm512_storeu_ps(panel + (i + j) * width + lane0, v[j]);
  }
  for (; i < k; ++i) {
    float* column = panel + i * width + lane0;
    for (int r = 0; r < kVector; ++r) column[r] = r < rows ? w[r * w_stride + i] : 0.0f;
  }
}

void pack_panel(const float* w, size_t w_stride, int rows, int width, int64_t k, float* panel) {
  for (int lane0 = 0; lane0 < width; lane0 += kVector) {
    pack_rows_into_lanes(w + lane0 * w_stride, w_stride, std::min(rows - lane0, kVector), k, panel, width, lane0);
  }
}

// Lanes of vector `half` that hold one of the panel's `rows` real rows.
__mmask16 row_mask(int rows, int half) {
  int in_half = std::clamp(rows - half * kVector, 0, kVector);
  return static_cast<__mmask16>((1u << in_half) - 1);
}

// Halves weight vectors (1 or 2) x C activations, over the whole k-slice, then writes or adds the
// sums of the panel's `rows` real rows to out (activation c's row sums at out + c * out_stride).
// Fully unrolled, so GCC keeps the accumulator array in registers.
template <int Halves, int C>
void panel_times_acts(int64_t k, const float* panel, const float* x, size_t x_stride, float* out,
                      size_t out_stride, int rows, bool accumulate) {
  constexpr int width = Halves * kVector;
  const float* xs[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) xs[c] = x + c * x_stride;
  __m512 acc[Halves][C];
#pragma GCC unroll 16
  for (int h = 0; h < Halves; ++h) {
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[h][c] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < k; ++i) {
    __m512 w[Halves];
#pragma GCC unroll 16
    for (int h = 0; h < Halves; ++h) w[h] = _mm512_loadu_ps(panel + i * width + h * kVector);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      __m512 v = _mm512_set1_ps(xs[c][i]);
#pragma GCC unroll 16
      for (int h = 0; h < Halves; ++h) acc[h][c] = _mm512_fmadd_ps(w[h], v, acc[h][c]);
    }
  }
#pragma GCC unroll 16
  for (int h = 0; h < Halves; ++h) {
    __mmask16 mask = row_mask(rows, h);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      float* o = out + c * out_stride + h * kVector;
      __m512 sum = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), acc[h][c]) : acc[h][c];
      _mm512_mask_storeu_ps(o, mask, sum);
    }
  }
}

using PanelKernel = void (*)(int64_t, const float*, const float*, size_t, float*, size_t, int, bool);

// The kernels for 1..kGemmActs activations, index C - 1.
template <int Halves, int... Cs>
constexpr auto make_kernels(std::integer_sequence<int, Cs...>) {
  return std::array<PanelKernel, sizeof...(Cs)>{panel_times_acts<Halves, Cs + 1>...};
}
constexpr auto kHalfPanelKernels = make_kernels<1>(std::make_integer_sequence<int, kGemmActs>());
constexpr auto kFullPanelKernels = make_kernels<2>(std::make_integer_sequence<int, kGemmActs>());

void float_gemm(int64_t k, const float* w, size_t w_stride, int64_t n_rows, const float* x, size_t x_stride, int64_t n,
                float* out, size_t out_stride, bool accumulate) {
  const int64_t n_panels = (n_rows + kPanelRows - 1) / kPanelRows;
  const size_t panel_floats = static_cast<size_t>(k) * kPanelRows;
  thread_local std::vector<float> panel_memory;
  if (panel_memory.size() < panel_floats * n_panels) panel_memory.resize(panel_floats * n_panels);
  auto panel_rows = [&](int64_t p) { return static_cast<int>(std::min<int64_t>(kPanelRows, n_rows - p * kPanelRows)); };
  for (int64_t p = 0; p < n_panels; ++p) {
    int rows = panel_rows(p);
    pack_panel(w + p * kPanelRows * w_stride, w_stride, rows, panel_width(rows), k, panel_memory.data() + p * panel_floats);
  }
  for (int64_t j0 = 0; j0 < n; j0 += kGemmActTile) {
    const int64_t j_end = std::min(n, j0 + kGemmActTile);
    for (int64_t p = 0; p < n_panels; ++p) {
      const float* panel = panel_memory.data() + p * panel_floats;
      float* out_p = out + p * kPanelRows;
      int rows = panel_rows(p);
      const auto& kernels = panel_width(rows) == kPanelRows ? kFullPanelKernels : kHalfPanelKernels;
      for (int64_t j = j0; j < j_end; j += kGemmActs) {
        int acts = static_cast<int>(std::min<int64_t>(kGemmActs, j_end - j));
        kernels[acts - 1](k, panel, x + j * x_stride, x_stride, out_p + j * out_stride, out_stride, rows, accumulate);
      }
    }
  }
}

}  // namespace

void add_float(IsaKernels& table) { table.float_gemm = float_gemm; }

}  // namespace qvl::avx512
