// The AMX matrix-matrix path (Fast precision, many activation rows, blocks of 32): the AVX-512 VNNI panels of
// vnni_panel.h multiplied on the tile unit. A panel block (B / 4 groups of 4 levels of 16 rows) is
// exactly the VNNI-packed right operand TDPBSUD wants, and B bytes of 16 activation rows' blocks,
// act_stride apart, its left operand: one instruction computes the 16 x 16 block dot products
// (signed activations times unsigned levels) that take the VNNI kernel 8 x 16 instructions. The
// per-block float work (scales and offsets) stays on AVX-512 and is now the larger cost, so pairs of
// blocks alternate between two sets of sum tiles: the tile unit works on one pair while the vector
// units scale the previous one. Measured, one thread, 1536^2 x 512: Q4_K 354 -> 403, Q8_0 315 -> 336
// GOP/s over the VNNI kernel; the float work per block, not the tile unit, is what bounds it. Q4_K now
// has a kernel of its own that moves most of that work to once per super-block (q4_k_amx.cpp).
//
// Same integer sums as the other Fast kernels; only the float summation order differs.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/amx_tiles.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/vnni_panel.h"

namespace qvl::amx {
namespace {

// acc[r] += the block's 16 weight rows' contributions for activation row r, from its int32 sums.
template <int B>
inline void add_block(const int32_t (&sums)[kTileRows][kTileRows], const uint8_t* panel_block, const uint8_t* act,
                      size_t act_stride, int64_t b, __m512 (&acc)[kTileRows]) {
  using Act = ActBlockOf<B>;
  const auto* scale_offset = reinterpret_cast<const float*>(panel_block + kVnniPanelRows * B);
  const __m512 scale = _mm512_loadu_ps(scale_offset), offset = _mm512_loadu_ps(scale_offset + kVnniPanelRows);
  for (int r = 0; r < kTileRows; ++r) {
    const Act& a = reinterpret_cast<const Act*>(act + r * act_stride)[b];
    __m512 products = _mm512_cvtepi32_ps(_mm512_load_si512(sums[r]));
    acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(scale, _mm512_set1_ps(a.d)), products, acc[r]);
    acc[r] = _mm512_fmadd_ps(offset, _mm512_set1_ps(a.sum), acc[r]);
  }
}

// The tile intrinsics take tile numbers as tokens (they become register names), so the two steps
// of a pair are macros over the tile numbers rather than templates.
// Block b (and b + 1 if it exists) into sum tiles T0 (and T1).
#define QVL_MULTIPLY_PAIR(T0, T1, b)                                                     \
  do {                                                                                   \
    _tile_zero(T0);                                                                      \
    _tile_loadd(2, levels + (b) * sizeof(Act), act_stride);                              \
    _tile_loadd(4, panel + (b) * block_bytes, 4 * kVnniPanelRows);                       \
    _tile_dpbsud(T0, 2, 4);                                                              \
    if ((b) + 1 < blocks) {                                                              \
      _tile_zero(T1);                                                                    \
      _tile_loadd(3, levels + ((b) + 1) * sizeof(Act), act_stride);                      \
      _tile_loadd(5, panel + ((b) + 1) * block_bytes, 4 * kVnniPanelRows);               \
      _tile_dpbsud(T1, 3, 5);                                                            \
    }                                                                                    \
  } while (0)
// The sums of that pair into acc.
#define QVL_ADD_PAIR(T0, T1, b)                                                          \
  do {                                                                                   \
    _tile_stored(T0, sums[0], kTileRows * sizeof(int32_t));                              \
    if ((b) + 1 < blocks) _tile_stored(T1, sums[1], kTileRows * sizeof(int32_t));        \
    add_block<B>(sums[0], panel + (b) * block_bytes, act, act_stride, (b), acc);         \
    if ((b) + 1 < blocks) add_block<B>(sums[1], panel + ((b) + 1) * block_bytes, act, act_stride, (b) + 1, acc); \
  } while (0)

// out[r * out_stride + c] for r < act_rows, c where row_mask is set: one panel against 16 activation
// rows (rows past act_rows must be readable; their results are dropped).
template <int B>
void panel_times_16_acts(int64_t blocks, const uint8_t* panel, const uint8_t* act, size_t act_stride, float* out,
                         size_t out_stride, int act_rows, __mmask16 row_mask) {
  using Act = ActBlockOf<B>;
  constexpr size_t block_bytes = vnni_panel_block_bytes<B>();
  alignas(64) int32_t sums[2][kTileRows][kTileRows];
  __m512 acc[kTileRows];
  for (int r = 0; r < kTileRows; ++r) acc[r] = _mm512_setzero_ps();
  const uint8_t* levels = act + offsetof(Act, qs);
  // Pairs alternate between sum tiles {0, 1} and {6, 7}: a pair's sums are stored and scaled only
  // after the next pair went to the tile unit.
  QVL_MULTIPLY_PAIR(0, 1, 0);
  for (int64_t b = 0; b < blocks; b += 4) {
    if (b + 2 < blocks) QVL_MULTIPLY_PAIR(6, 7, b + 2);
    QVL_ADD_PAIR(0, 1, b);
    if (b + 2 >= blocks) break;
    if (b + 4 < blocks) QVL_MULTIPLY_PAIR(0, 1, b + 4);
    QVL_ADD_PAIR(6, 7, b + 2);
  }
  for (int r = 0; r < act_rows; ++r) _mm512_mask_storeu_ps(out + r * out_stride, row_mask, acc[r]);
}

// A DotTileFn for many activation rows: packs the n_rows weight rows into 16-row panels, then runs
// every panel against tiles of activation rows small enough to stay in L2 while the panels are reused.
template <int B, VnniPackFn Pack>
struct TileGemm {
  static void run(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
                  int64_t n_act, float* out, size_t out_stride);
};

template <int B, VnniPackFn Pack>
void TileGemm<B, Pack>::run(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                            size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  const int64_t blocks = k / B;
  const size_t panel_bytes = static_cast<size_t>(blocks) * vnni_panel_block_bytes<B>();
  const uint8_t* panels = pack_vnni_panels(Pack, w, w_stride, n_rows, k, panel_bytes);
  const int64_t full_rows = n_act / kTileRows * kTileRows, left = n_act - full_rows;
  const uint8_t* padded = padded_last_rows(act, act_stride, full_rows, left);
  configure_tiles<B>();
  for_each_panel_and_act_tile<kVnniPanelRows>(n_rows, n_act, act_stride, kTileRows, [&](int64_t p, int rows, int64_t j, int64_t j_end) {
    const __mmask16 row_mask = static_cast<__mmask16>((1u << rows) - 1);
    const uint8_t* panel = panels + p * panel_bytes;
    float* out_p = out + p * kVnniPanelRows;
    for (; j < j_end; j += kTileRows) {
      const bool full = j + kTileRows <= full_rows;
      panel_times_16_acts<B>(blocks, panel, full ? act + j * act_stride : padded, act_stride, out_p + j * out_stride,
                             out_stride, full ? kTileRows : static_cast<int>(left), row_mask);
    }
  });
  _tile_release();  // no tile state for the kernel to save at every context switch
}

}  // namespace

// Q6_K keeps the VNNI kernel: with its 16-value blocks the per-block float work doubles per product
// and the tile path measured slower (233 against 285 GOP/s, 1536^2 x 512, one thread).
void add_gemm(IsaKernels& table) { set_vnni_gemms<TileGemm>(table, false); }

}  // namespace qvl::amx
