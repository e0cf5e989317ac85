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

constexpr int kActRowsPerStep = 8;  // activation rows per register tile (2 x 8 of 32 zmm)


inline __m512i broadcast4(const int8_t* p) {
  int32_t word;
  std::memcpy(&word, p, sizeof(word));
  return _mm512_set1_epi32(word);
}

// out[c * out_stride + r] for r < rows, c < C: one panel against C activation rows over all blocks.
template <int B, int C>
void panel_times_acts(int64_t blocks, const uint8_t* panel, const uint8_t* act, size_t act_stride, float* out,
                      size_t out_stride, __mmask16 row_mask) {
  constexpr int groups = B / 4;
  using Act = ActBlockOf<B>;
  const Act* a[C];
  for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const Act*>(act + c * act_stride);
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = panel + b * vnni_panel_block_bytes<B>();
    __m512i sums[C];
    for (int c = 0; c < C; ++c) sums[c] = _mm512_setzero_si512();
    for (int g = 0; g < groups; ++g) {
      __m512i w = _mm512_loadu_si512(block + 64 * g);
      for (int c = 0; c < C; ++c) sums[c] = _mm512_dpbusd_epi32(sums[c], w, broadcast4(a[c][b].qs + 4 * g));
    }
    const auto* scale_offset = reinterpret_cast<const float*>(block + kVnniPanelRows * B);
    __m512 scale = _mm512_loadu_ps(scale_offset), offset = _mm512_loadu_ps(scale_offset + kVnniPanelRows);
    for (int c = 0; c < C; ++c) {
      acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(scale, _mm512_set1_ps(a[c][b].d)), _mm512_cvtepi32_ps(sums[c]), acc[c]);
      acc[c] = _mm512_fmadd_ps(offset, _mm512_set1_ps(a[c][b].sum), acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(out + c * out_stride, row_mask, acc[c]);
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
  for_each_panel_and_act_tile<kVnniPanelRows>(n_rows, n_act, act_stride, C, [&](int64_t p, int rows, int64_t j,
                                                                                int64_t j_end) {
    const __mmask16 row_mask = static_cast<__mmask16>((1u << rows) - 1);
    for_each_act_group<C>(j, j_end, [&](auto tile, int64_t first) {
      panel_times_acts<B, decltype(tile)::value>(blocks, panels + p * panel_bytes, act + first * act_stride, act_stride,
                                                 out + first * out_stride + p * kVnniPanelRows, out_stride, row_mask);
    });
  });
}

}  // namespace

void add_gemm(IsaKernels& table) { set_vnni_gemms<PanelGemm>(table, true); }

}  // namespace qvl::avx512
