// The loops over weight rows x activation rows: the scalar references' plain one (every output one
// call of the type's row dot product, so the reference stays obviously correct), and the register-tiled
// one the ISA kernels share.
#pragma once
#include <cstddef>
#include <cstdint>

namespace qvl {

using RowDotFn = float (*)(int64_t k, const uint8_t* w_row, const uint8_t* act_row);

template <RowDotFn RowDot>
void dot_tile_by_rows(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                      size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  for (int64_t j = 0; j < n_act; ++j) {
    for (int64_t r = 0; r < n_rows; ++r) {
      out[j * out_stride + r] = RowDot(k, w + r * w_stride, act + j * act_stride);
    }
  }
}

// Runs Kernel::run<R, C> over a weight-rows x activation-rows tile: 4 x 2 register tiles where the
// shape allows (each weight block decoded once for two activation rows), smaller tiles at the edges.
template <typename Kernel>
void dot_tile_tiled(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
                    int64_t n_act, float* out, size_t out_stride) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) {
    int64_t j = 0;
    for (; j + 2 <= n_act; j += 2) {
      Kernel::template run<4, 2>(k, w + r * w_stride, w_stride, act + j * act_stride, act_stride,
                                 out + j * out_stride + r, out_stride);
    }
    for (; j < n_act; ++j) {
      Kernel::template run<4, 1>(k, w + r * w_stride, w_stride, act + j * act_stride, act_stride,
                                 out + j * out_stride + r, out_stride);
    }
  }
  for (; r < n_rows; ++r) {
    for (int64_t j = 0; j < n_act; ++j) {
      Kernel::template run<1, 1>(k, w + r * w_stride, w_stride, act + j * act_stride, act_stride,
                                 out + j * out_stride + r, out_stride);
    }
  }
}

}  // namespace qvl
