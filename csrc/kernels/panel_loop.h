// The loop every panel GEMM runs, whatever its ISA (panel_avx2.h and panel_neon.h with 8-row panels,
// gemm_avx512.cpp, gemm_amx.cpp and q4_k_amx.cpp with 16): a chunk's weight rows packed once into
// panels, then every panel against tiles of activation rows small enough to stay in L2 while the
// panels are reused, a register tile of activation rows at a time. ISA-neutral templates only: each
// instantiation takes an ISA file's own packer or lambda, so no code compiled for one ISA is shared
// with another.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace qvl {

constexpr size_t kActTileBytes = 256 * 1024;  // activation rows per pass over the panels: stays in L2

// Bytes of one panel block: Rows rows of B levels, then a float scale and a float offset per row.
template <int B, int Rows>
constexpr size_t panel_block_bytes_of() {
  return Rows * B + 2 * Rows * sizeof(float);
}

// Packs n_rows weight rows (w_stride bytes apart, k values) into panels of PanelRows rows, panel_bytes
// each, at `panels`: pack(rows' first row, w_stride, real rows, k, panel).
template <int PanelRows, typename Pack>
void pack_panels(Pack pack, uint8_t* panels, const uint8_t* w, size_t w_stride, int64_t n_rows, int64_t k,
                 size_t panel_bytes) {
  for (int64_t p = 0; p * PanelRows < n_rows; ++p) {
    const int rows = static_cast<int>(std::min<int64_t>(PanelRows, n_rows - p * PanelRows));
    pack(w + p * PanelRows * w_stride, w_stride, rows, k, panels + p * panel_bytes);
  }
}

// visit(panel index, its real rows, first activation row, end) for every panel of PanelRows rows and
// tile of activation rows (a multiple of `step` rows), tiles outermost.
template <int PanelRows, typename Visit>
void for_each_panel_and_act_tile(int64_t n_rows, int64_t n_act, size_t act_stride, int64_t step, Visit visit) {
  const int64_t n_panels = (n_rows + PanelRows - 1) / PanelRows;
  const int64_t act_tile = std::max<int64_t>(step, static_cast<int64_t>(kActTileBytes / act_stride) / step * step);
  for (int64_t j0 = 0; j0 < n_act; j0 += act_tile) {
    const int64_t j_end = std::min(n_act, j0 + act_tile);
    for (int64_t p = 0; p < n_panels; ++p) {
      visit(p, static_cast<int>(std::min<int64_t>(PanelRows, n_rows - p * PanelRows)), j0, j_end);
    }
  }
}

// run(std::integral_constant<int, N>(), first) for N = Rows down to 1 while `left` rows remain.
template <int Rows, typename Run>
void run_act_rows(int64_t left, int64_t first, Run& run) {
  if constexpr (Rows > 0) {
    if (left == Rows) {
      run(std::integral_constant<int, Rows>(), first);
    } else {
      run_act_rows<Rows - 1>(left, first, run);
    }
  }
}

// run(std::integral_constant<int, C>(), first) over activation rows [j, j_end) in register tiles of C
// rows, the last 1 .. C - 1 rows as one tile of their count.
template <int C, typename Run>
void for_each_act_group(int64_t j, int64_t j_end, Run run) {
  for (; j + C <= j_end; j += C) run(std::integral_constant<int, C>(), j);
  run_act_rows<C - 1>(j_end - j, j, run);
}

// The calling thread's panel memory, reused across calls: one buffer per Owner (an ISA file's own type),
// so that no instantiation is shared between code compiled for different ISAs.
template <typename Owner>
uint8_t* thread_panel_buffer(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

// A DotTileFn for many activation rows on the 8-row panel ISAs (panel_avx2.h, panel_neon.h): packs the
// n_rows weight rows into panels, then runs every panel against tiles of activation rows small enough to
// stay in L2 while the panels are reused. Panels is the ISA's policy: pack<Decoder> and times<Decoder, C>
// (one panel against a register tile of C activation rows).
template <int PanelRows, typename Panels, typename Decoder>
void panel_gemm_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                     size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  constexpr int C = 4;
  const int64_t blocks = k / Decoder::kBlock;
  const size_t panel_bytes = static_cast<size_t>(blocks) * panel_block_bytes_of<Decoder::kBlock, PanelRows>();
  const int64_t n_panels = (n_rows + PanelRows - 1) / PanelRows;
  uint8_t* panels = thread_panel_buffer<Panels>(panel_bytes * static_cast<size_t>(n_panels));
  pack_panels<PanelRows>(Panels::template pack<Decoder>, panels, w, w_stride, n_rows, k, panel_bytes);
  for_each_panel_and_act_tile<PanelRows>(n_rows, n_act, act_stride, C, [&](int64_t p, int rows, int64_t j, int64_t j_end) {
    for_each_act_group<C>(j, j_end, [&](auto tile, int64_t first) {
      Panels::template times<Decoder, decltype(tile)::value>(blocks, panels + p * panel_bytes, act + first * act_stride,
                                                           act_stride, out + first * out_stride + p * PanelRows,
                                                           out_stride, rows);
    });
  });
}

}  // namespace qvl
