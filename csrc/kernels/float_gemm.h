// The float GEMM of every ISA (kernel_table.h's FloatGemmFn: the Exact path on dequantized k-slices,
// and float weights) for a vector type V (simd/vec_*.h). No intrinsics here.
//
// Weight rows are transposed into panels of up to PanelVectors vectors of rows (value i of the panel's
// rows contiguous); the last panel of a call is only as many vectors wide as its rows need, so a short
// remainder costs no wasted FMAs. Per value, the panel's vectors meet up to Acts broadcast activations
// (simd/micro_gemm.h), with no horizontal sums: each activation's outputs are contiguous and stored as
// vectors. Each output is summed in order over the slice (the caller keeps slices short, so the
// rounding stays that of a short sum), so it does not depend on how many rows come with it.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "simd/micro_gemm.h"

namespace qvl::simd {

// Packs `rows` weight rows (w_stride floats apart, k values) into a panel `width` floats wide per
// value, zeros in the lanes past `rows`.
using FloatPackFn = void (*)(const float* w, size_t w_stride, int rows, int width, int64_t k, float* panel);

// (A template only so that each ISA's file compiles its own copy: no code built for one ISA is shared.)
template <typename V>
void pack_float_panel(const float* w, size_t w_stride, int rows, int width, int64_t k, float* panel) {
  for (int64_t i = 0; i < k; ++i) {
    float* column = panel + i * width;
    for (int r = 0; r < width; ++r) column[r] = r < rows ? w[r * w_stride + i] : 0.0f;
  }
}

template <typename V, int PanelVectors, int Acts, FloatPackFn Pack = pack_float_panel<V>>
struct FloatGemm {
  static constexpr int kPanelRows = PanelVectors * V::kLanes;
  // Activation rows per pass over the packed panels: their k-slice (at most 256 floats each, by the
  // caller's slicing) stays in L2 while every panel meets it.
  static constexpr int64_t kActTile = 96;
  static_assert(kActTile % Acts == 0, "a pass holds whole register tiles");

  // Vectors x C activations over the whole k-slice, then the sums of the panel's `rows` real rows
  // written or added to out (activation c's row sums at out + c * out_stride).
  template <int Vectors, int C>
  static void panel_times_acts(int64_t k, const float* panel, const float* x, size_t x_stride, float* out,
                               size_t out_stride, int rows, bool accumulate) {
    typename V::F acc[C][Vectors];
    zero_tile<V>(acc);
    broadcast_product<FloatMadd<V>>(x, static_cast<int64_t>(x_stride), 1, panel, int64_t{Vectors} * V::kLanes, k, acc);
#pragma GCC unroll 16
    for (int v = 0; v < Vectors; ++v) {
      const int lanes = std::clamp(rows - v * V::kLanes, 0, V::kLanes);
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        float* o = out + c * out_stride + v * V::kLanes;
        if (lanes == V::kLanes) {
          V::store(o, accumulate ? V::add(V::load(o), acc[c][v]) : acc[c][v]);
        } else if (lanes > 0) {
          V::store_first(o, accumulate ? V::add(V::load_first(o, lanes), acc[c][v]) : acc[c][v], lanes);
        }
      }
    }
  }

  using PanelKernel = void (*)(int64_t, const float*, const float*, size_t, float*, size_t, int, bool);

  // kernels[vectors - 1][acts - 1]
  template <int Vectors, int... Cs>
  static constexpr std::array<PanelKernel, sizeof...(Cs)> kernels_for(std::integer_sequence<int, Cs...>) {
    return {panel_times_acts<Vectors, Cs + 1>...};
  }
  template <int... Vs>
  static constexpr std::array<std::array<PanelKernel, Acts>, sizeof...(Vs)> all_kernels(
      std::integer_sequence<int, Vs...>) {
    return {kernels_for<Vs + 1>(std::make_integer_sequence<int, Acts>())...};
  }
  static constexpr auto kKernels = all_kernels(std::make_integer_sequence<int, PanelVectors>());

  static void gemm(int64_t k, const float* w, size_t w_stride, int64_t n_rows, const float* x, size_t x_stride,
                   int64_t n, float* out, size_t out_stride, bool accumulate) {
    const int64_t n_panels = (n_rows + kPanelRows - 1) / kPanelRows;
    const size_t panel_floats = static_cast<size_t>(k) * kPanelRows;
    thread_local std::vector<float> panel_memory;
    if (panel_memory.size() < panel_floats * n_panels) panel_memory.resize(panel_floats * n_panels);
    auto panel_rows = [&](int64_t p) { return static_cast<int>(std::min<int64_t>(kPanelRows, n_rows - p * kPanelRows)); };
    auto panel_vectors = [&](int rows) { return (rows + V::kLanes - 1) / V::kLanes; };
    for (int64_t p = 0; p < n_panels; ++p) {
      const int rows = panel_rows(p);
      Pack(w + p * kPanelRows * w_stride, w_stride, rows, panel_vectors(rows) * V::kLanes, k,
           panel_memory.data() + p * panel_floats);
    }
    for (int64_t j0 = 0; j0 < n; j0 += kActTile) {
      const int64_t j_end = std::min(n, j0 + kActTile);
      for (int64_t p = 0; p < n_panels; ++p) {
        const float* panel = panel_memory.data() + p * panel_floats;
        float* out_p = out + p * kPanelRows;
        const int rows = panel_rows(p);
        const auto& kernels = kKernels[panel_vectors(rows) - 1];
        for (int64_t j = j0; j < j_end; j += Acts) {
          const int acts = static_cast<int>(std::min<int64_t>(Acts, j_end - j));
          kernels[acts - 1](k, panel, x + j * x_stride, x_stride, out_p + j * out_stride, out_stride, rows, accumulate);
        }
      }
    }
  }
};

}  // namespace qvl::simd
