// The loops over weight rows x activation rows: the scalar references' plain one (every output one
// call of the type's row dot product, so the reference stays obviously correct), and the register-tiled
// one the ISA kernels share.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

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

// Runs Kernel::run<4, C> (C = 2 where the shape allows: each weight block decoded once for two
// activation rows) over a weight-rows x activation-rows tile in stream order: the rows are cut into 4
// streams of consecutive rows and a register tile takes row i of every stream, so each stream is read
// in address order and the hardware prefetcher can follow it (tiles of 4 adjacent short rows give it
// little to lock on to). The n_rows % 4 rows left run one at a time.
template <typename Kernel>
void dot_tile_tiled(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
                    int64_t n_act, float* out, size_t out_stride) {
  constexpr int kRows = 4;
  const int64_t stream_rows = n_rows / kRows;
  const size_t tile_stride = static_cast<size_t>(stream_rows) * w_stride;
  auto run_tile = [&](auto acts, int64_t i, int64_t j) {
    constexpr int C = decltype(acts)::value;
    float sums[C][kRows];
    Kernel::template run<kRows, C>(k, w + i * w_stride, tile_stride, act + j * act_stride, act_stride, sums[0], kRows);
    for (int c = 0; c < C; ++c) {
      for (int r = 0; r < kRows; ++r) out[(j + c) * out_stride + r * stream_rows + i] = sums[c][r];
    }
  };
  for (int64_t i = 0; i < stream_rows; ++i) {
    int64_t j = 0;
    for (; j + 2 <= n_act; j += 2) run_tile(std::integral_constant<int, 2>(), i, j);
    for (; j < n_act; ++j) run_tile(std::integral_constant<int, 1>(), i, j);
  }
  for (int64_t r = stream_rows * kRows; r < n_rows; ++r) {
    for (int64_t j = 0; j < n_act; ++j) {
      Kernel::template run<1, 1>(k, w + r * w_stride, w_stride, act + j * act_stride, act_stride,
                                 out + j * out_stride + r, out_stride);
    }
  }
}

}  // namespace qvl
