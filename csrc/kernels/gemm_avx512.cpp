// The AVX-512 VNNI matrix-matrix path (Fast precision, many activation rows), for every weight type
// with a VNNI packer (vnni_panel.h). Same plan as the AVX2 panels (panel_avx2.h), twice as wide and
// with one instruction where AVX2 needs three: per group of 4 levels, vpdpbusd multiplies the 16
// rows' unsigned levels by 4 activation levels broadcast from memory and adds the 4 products of each
// row into its int32 lane (no int16 step, so no saturation limit and no widening). The block's float
// work — scales and offsets of 16 rows against one activation row — is one vector each.
//
// The integer sums are the Fast kernels' (the same weight and activation levels; signed weight levels
// shifted by + 128 with the shift taken back through the offset and the activation block's sum); only
// the float summation order differs.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/vnni_panel.h"

namespace qvl::avx512 {
namespace {

// A register tile of kPanelsPerStep panels (32 weight rows) by kActRowsPerStep activation rows: 12 int32
// sums and 12 float accumulators; each broadcast group of activation levels feeds two vpdpbusd, so a
// vpdpbusd needs 2/3 of a load where 16 x 8 tiles needed 9/8 (Zen 5 does two 512-bit loads a cycle).
constexpr int kPanelsPerStep = 2;
constexpr int kActRowsPerStep = 6;


inline __m512i broadcast4(const int8_t* p) {
  int32_t word;
  std::memcpy(&word, p, sizeof(word));
  return _mm512_set1_epi32(word);
}

// out[c * out_stride + 16 q + r] for panel q < P (panels panel_bytes apart; r below the rows in
// last_mask for the last one) and activation row c < C, over all blocks. P panels share each broadcast
// group of activation levels.
template <int B, int P, int C>
void panels_times_acts(int64_t blocks, const uint8_t* panel, size_t panel_bytes, const uint8_t* act,
                       size_t act_stride, float* out, size_t out_stride, __mmask16 last_mask) {
  constexpr int groups = B / 4;
  using Act = ActBlockOf<B>;
  const Act* a[C];
  for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const Act*>(act + c * act_stride);
  __m512 acc[P][C];
  for (int q = 0; q < P; ++q) {
    for (int c = 0; c < C; ++c) acc[q][c] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = panel + b * vnni_panel_block_bytes<B>();
    __m512i sums[P][C];
    for (int q = 0; q < P; ++q) {
      for (int c = 0; c < C; ++c) sums[q][c] = _mm512_setzero_si512();
    }
    for (int g = 0; g < groups; ++g) {
      __m512i w[P];
      for (int q = 0; q < P; ++q) w[q] = _mm512_loadu_si512(block + q * panel_bytes + 64 * g);
      for (int c = 0; c < C; ++c) {
        const __m512i levels = broadcast4(a[c][b].qs + 4 * g);
        for (int q = 0; q < P; ++q) sums[q][c] = _mm512_dpbusd_epi32(sums[q][c], w[q], levels);
      }
    }
    for (int q = 0; q < P; ++q) {
      const auto* scale_offset = reinterpret_cast<const float*>(block + q * panel_bytes + kVnniPanelRows * B);
      const __m512 scale = _mm512_loadu_ps(scale_offset), offset = _mm512_loadu_ps(scale_offset + kVnniPanelRows);
      for (int c = 0; c < C; ++c) {
        acc[q][c] =
            _mm512_fmadd_ps(_mm512_mul_ps(scale, _mm512_set1_ps(a[c][b].d)), _mm512_cvtepi32_ps(sums[q][c]), acc[q][c]);
        acc[q][c] = _mm512_fmadd_ps(offset, _mm512_set1_ps(a[c][b].sum), acc[q][c]);
      }
    }
  }
  for (int q = 0; q < P; ++q) {
    const __mmask16 mask = q == P - 1 ? last_mask : static_cast<__mmask16>(0xFFFF);
    for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(out + c * out_stride + q * kVnniPanelRows, mask, acc[q][c]);
  }
}

// A DotTileFn for many activation rows: packs the n_rows weight rows into 16-row panels, then runs
// every panel against tiles of activation rows small enough to stay in L2 while the panels are reused.
template <int B, VnniPackFn Pack>
struct PanelGemm {
  static void run(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
                  int64_t n_act, float* out, size_t out_stride);
};

template <int B, VnniPackFn Pack>
void PanelGemm<B, Pack>::run(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                             size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  constexpr int C = kActRowsPerStep;
  const int64_t blocks = k / B;
  const size_t panel_bytes = static_cast<size_t>(blocks) * vnni_panel_block_bytes<B>();
  const uint8_t* panels = pack_vnni_panels(Pack, w, w_stride, n_rows, k, panel_bytes);
  constexpr int P = kPanelsPerStep;
  for_each_panel_and_act_tile<kVnniPanelRows * P>(n_rows, n_act, act_stride, C, [&](int64_t pair, int rows, int64_t j,
                                                                                    int64_t j_end) {
    const int64_t p = pair * P;
    for_each_act_group<C>(j, j_end, [&](auto tile, int64_t first) {
      constexpr int kTile = decltype(tile)::value;
      const uint8_t* tile_act = act + first * act_stride;
      float* tile_out = out + first * out_stride + p * kVnniPanelRows;
      if (rows == P * kVnniPanelRows) {
        panels_times_acts<B, P, kTile>(blocks, panels + p * panel_bytes, panel_bytes, tile_act, act_stride, tile_out,
                                       out_stride, static_cast<__mmask16>(0xFFFF));
        return;
      }
      for (int q = 0; q * kVnniPanelRows < rows; ++q) {  // a short pair: its panels one at a time
        const int q_rows = std::min(kVnniPanelRows, rows - q * kVnniPanelRows);
        panels_times_acts<B, 1, kTile>(blocks, panels + (p + q) * panel_bytes, panel_bytes, tile_act, act_stride,
                                       tile_out + q * kVnniPanelRows, out_stride,
                                       static_cast<__mmask16>((1u << q_rows) - 1));
      }
    });
  });
}

}  // namespace

void add_gemm(IsaKernels& table) { set_vnni_gemms<PanelGemm>(table, true); }

}  // namespace qvl::avx512
