// Q4_K on AMX: the matrix-matrix kernel (prefill, many activation rows) on super-block panels
// (Q4_KTilePanel, vnni_panel.h). The generic tile GEMM (gemm_amx.cpp) is bound by its float work: every
// 32-value sub-block has its own scale, so each tile product of 16 x 16 sums costs 16 rows x 4 vector
// operations (convert, scale, two FMAs). Here the levels are stored minus 8, so a sub-block's sums fit
// int16 and one vpdpwssd per row multiplies them by the integer sub-block scales straight from the
// stored tile; the tile unit then works on the next super-block while the vector units convert and
// scale these sums. The activations have a scale per 32 values (ActFormat::Q8_32, as on every
// matrix-matrix path), so each sub-block's sum is converted on its own: per sub-block and row one
// vpdpwssd, one conversion and two FMAs. (Until the activations had one scale per 256 values, the
// integer sums of a super-block were added before one conversion; the figures below were measured
// then, and the change was made on a machine without AMX: not measured.)
// Measured on the 2-core VM, 1536^2 x 512: ~400 -> ~500-630 GOP/s on one thread (~870-1060 on two).
// The tile unit's loads and stores bound it now: leaving out the tile stores gained ~25%, the
// activation tile loads ~15%, the vector work nothing; one activation tile load shared by two panels
// lost 17% and a line-aligned activation layout gained nothing.
//
// Same integer sums as the scalar reference up to the exact regrouping d * sc * (q - 8) + 8 * d * sc;
// only the float summation order differs.
#include <immintrin.h>

#include <cstddef>

#include <cstring>

#include "kernels/amx_tiles.h"
#include "kernels/blocks.h"
#include "kernels/k_quant_avx2.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/vnni_panel.h"

namespace qvl::amx {
namespace {

using avx2::decode_scales_mins;
using avx2::interleave_8_rows;
using avx2::load32;

// Packs `rows` (<= 16) Q4_K weight rows into Q4_KTilePanels, one per super-block.
void pack_tile_panels(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  // Rows past `rows` stay zero: levels, scales and offsets alike.
  alignas(32) int8_t levels[kVnniPanelRows][kBlockK] = {};
  alignas(32) int32_t scales[kVnniPanelRows][8] = {};
  alignas(32) float offsets[kVnniPanelRows][8] = {};
  const __m256i low_mask = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  for (int64_t unit = 0; unit < k / kBlockK; ++unit) {
    auto& out = reinterpret_cast<Q4_KTilePanel*>(panel)[unit];
    std::memset(out.d, 0, sizeof(out.d));
    for (int r = 0; r < rows; ++r) {
      const BlockQ4_K& block = reinterpret_cast<const BlockQ4_K*>(w + r * w_stride)[unit];
      for (int j = 0; j < 4; ++j) {
        __m256i packed = load32(block.qs + 32 * j);
        _mm256_store_si256(reinterpret_cast<__m256i*>(&levels[r][64 * j]),
                           _mm256_sub_epi8(_mm256_and_si256(packed, low_mask), eight));
        _mm256_store_si256(reinterpret_cast<__m256i*>(&levels[r][64 * j + 32]),
                           _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask), eight));
      }
      const float d = _cvtsh_ss(block.d), dmin = _cvtsh_ss(block.dmin);
      out.d[r] = d;
      const __m128i scales_mins = _mm256_castsi256_si128(decode_scales_mins(block.scales));
      const __m256i scale = _mm256_cvtepu8_epi32(scales_mins), min = _mm256_cvtepu8_epi32(_mm_srli_si128(scales_mins, 8));
      _mm256_store_si256(reinterpret_cast<__m256i*>(scales[r]), scale);
      // 8 * d * scale and dmin * min are exact in float: one rounding, in the subtraction.
      _mm256_store_ps(offsets[r], _mm256_fmsub_ps(_mm256_set1_ps(8.0f * d), _mm256_cvtepi32_ps(scale),
                                                  _mm256_mul_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(min))));
    }
    for (int s = 0; s < 8; ++s) {
      for (int r = 0; r < kVnniPanelRows; ++r) {
        out.scales[s][r] = scales[r][s];
        out.offsets[s][r] = offsets[r][s];
      }
      for (int r = 0; r < kVnniPanelRows; r += 8) {
        interleave_8_rows<kVnniPanelRows>(&levels[r][32 * s], kBlockK, reinterpret_cast<uint8_t*>(out.levels[s]) + 4 * r);
      }
    }
  }
}


constexpr int kSubBlocks = kBlockK / kBlock32;
using SubBlockSums = int32_t[kSubBlocks][kTileRows][kTileRows];  // [sub-block][activation row][weight row]

// acc += activation row r's share of one super-block, from its stored sub-block sums.
inline void add_super_block_row(const SubBlockSums& sums, int r, const Q4_KTilePanel& panel, const ActQ8_32* a,
                                __m512& acc) {
  const __m512 d = _mm512_loadu_ps(panel.d);
  for (int s = 0; s < kSubBlocks; ++s) {
    // Each sum fits int16, so its low half-word is the sum and the scale's high half-word is 0.
    const __m512i scaled = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_load_si512(sums[s][r]),
                                               _mm512_loadu_si512(panel.scales[s]));
    acc = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(a[s].d)), _mm512_cvtepi32_ps(scaled), acc);
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(panel.offsets[s]), _mm512_set1_ps(a[s].sum), acc);
  }
}

// Sub-blocks s and s + 1 of the super-block at `act_blocks` (its first ActQ8_32) and of `panel` into
// sum tiles T0 and T1, stored to sums[s], sums[s + 1]. Tile numbers are tokens (register names), hence
// a macro.
#define QVL_Q4_K_PAIR(T0, T1, s)                                                                   \
  do {                                                                                             \
    _tile_zero(T0);                                                                                \
    _tile_loadd(2, act_blocks + (s) * sizeof(ActQ8_32) + offsetof(ActQ8_32, qs), act_stride);      \
    _tile_loadd(4, panel.levels[s], 4 * kVnniPanelRows);                                           \
    _tile_dpbssd(T0, 2, 4);                                                                        \
    _tile_zero(T1);                                                                                \
    _tile_loadd(3, act_blocks + ((s) + 1) * sizeof(ActQ8_32) + offsetof(ActQ8_32, qs), act_stride); \
    _tile_loadd(5, panel.levels[(s) + 1], 4 * kVnniPanelRows);                                     \
    _tile_dpbssd(T1, 3, 5);                                                                        \
    _tile_stored(T0, sums[s], kTileRows * sizeof(int32_t));                                        \
    _tile_stored(T1, sums[(s) + 1], kTileRows * sizeof(int32_t));                                  \
  } while (0)

// out[r * out_stride + c] for r < act_rows, c where row_mask is set: one panel against 16 activation
// rows (rows past act_rows must be readable; their results are dropped). While the tile unit works on
// a super-block, the vector units scale the previous one's sums, four activation rows per pair.
void panel_times_16_acts(int64_t super_blocks, const Q4_KTilePanel* panels, const uint8_t* act, size_t act_stride,
                         float* out, size_t out_stride, int act_rows, __mmask16 row_mask) {
  alignas(64) SubBlockSums stored[2];
  __m512 acc[kTileRows];
  for (int r = 0; r < kTileRows; ++r) acc[r] = _mm512_setzero_ps();
  auto add_rows = [&](int64_t sb, int first, int count) {
    for (int r = first; r < first + count; ++r) {
      const auto* a = reinterpret_cast<const ActQ8_32*>(act + r * act_stride) + sb * kSubBlocks;
      add_super_block_row(stored[sb % 2], r, panels[sb], a, acc[r]);
    }
  };
  for (int64_t sb = 0; sb < super_blocks; ++sb) {
    const Q4_KTilePanel& panel = panels[sb];
    const uint8_t* act_blocks = act + sb * kSubBlocks * sizeof(ActQ8_32);
    SubBlockSums& sums = stored[sb % 2];
    for (int s = 0; s < kSubBlocks; s += 2) {
      if (s % 4 == 0) {
        QVL_Q4_K_PAIR(0, 1, s);
      } else {
        QVL_Q4_K_PAIR(6, 7, s);
      }
      if (sb > 0) add_rows(sb - 1, 2 * s, 4);
    }
  }
  add_rows(super_blocks - 1, 0, kTileRows);
  for (int r = 0; r < act_rows; ++r) _mm512_mask_storeu_ps(out + r * out_stride, row_mask, acc[r]);
}

#undef QVL_Q4_K_PAIR

// The Q4_K gemm_tile: packs the n_rows weight rows into 16-row super-block panels, then runs every
// panel against tiles of activation rows small enough to stay in L2 while the panels are reused.
void q4_k_tile_gemm(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  const int64_t super_blocks = k / kBlockK;
  const size_t panel_bytes = static_cast<size_t>(super_blocks) * sizeof(Q4_KTilePanel);
  const uint8_t* panels = pack_vnni_panels(pack_tile_panels, w, w_stride, n_rows, k, panel_bytes);
  const int64_t full_rows = n_act / kTileRows * kTileRows, left = n_act - full_rows;
  const uint8_t* padded = padded_last_rows(act, act_stride, full_rows, left);
  configure_tiles<kBlock32>();
  for_each_panel_and_act_tile<kVnniPanelRows>(n_rows, n_act, act_stride, kTileRows, [&](int64_t p, int rows, int64_t j, int64_t j_end) {
    const __mmask16 row_mask = static_cast<__mmask16>((1u << rows) - 1);
    const auto* panel = reinterpret_cast<const Q4_KTilePanel*>(panels + p * panel_bytes);
    float* out_p = out + p * kVnniPanelRows;
    for (; j < j_end; j += kTileRows) {
      const bool full = j + kTileRows <= full_rows;
      panel_times_16_acts(super_blocks, panel, full ? act + j * act_stride : padded, act_stride,
                          out_p + j * out_stride, out_stride, full ? kTileRows : static_cast<int>(left), row_mask);
    }
  });
  _tile_release();  // no tile state for the kernel to save at every context switch
}

}  // namespace

void add_q4_k(IsaKernels& table) { table.q4_k.gemm_tile = q4_k_tile_gemm; }

}  // namespace qvl::amx
