// The plain weight-rows x activation-rows loop the scalar references share: every output is one call
// of the type's row dot product, so the reference stays obviously correct.
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

}  // namespace qvl
