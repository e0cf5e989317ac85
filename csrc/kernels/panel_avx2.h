// The AVX2 matrix-matrix path (Fast precision, many activation rows), shared by every weight type.
//
// A chunk of weight rows is converted once into "panels" of 8 rows, whatever its GGUF type: per block
// of B values (B = 32, or 16 for Q6_K's sub-blocks), the int8 levels interleaved so that 4 consecutive
// levels of each of the 8 rows form one 32-byte vector, then the 8 rows' float scale and offset
// (x = scale * level + offset). One vector of 4 activation levels broadcast to all lanes then meets 8
// rows at once in maddubs: the 8 lanes of the int32 sums are the 8 rows' block dot products, so the
// block's scales apply as one vector and no horizontal reduction is ever needed. The integer sums
// are the same as the row-by-row Fast kernels' (same levels, same activation levels); only the float
// summation order differs.
//
// Levels are unsigned (0..63, the offset carries a type's zero point) wherever the type allows, so
// maddubs takes them as they are; signed 8-bit levels (Q8_0, float weights quantized on the fly) go
// through the sign trick instead. Each decoder (in its family's file) states its block, levels and
// how many maddubs results fit an int16 lane before widening.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/avx2_common.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_loop.h"
#include "kernels/tile_loop.h"

namespace qvl::avx2 {

constexpr int kPanelRows = 8;

template <int B, int Rows = kPanelRows>
constexpr size_t panel_block_bytes() {
  return panel_block_bytes_of<B, Rows>();
}



// The 32 levels of 8 rows (row_stride bytes apart) as 8 groups of 4 levels per row: group g of row r
// goes to out + 4 * Rows * g + 4 * r. An 8 x 8 transpose of 32-bit words in registers.
template <int Rows>
inline void interleave_8_rows(const int8_t* rows, int row_stride, uint8_t* out) {
  __m256i r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = load32(rows + i * row_stride);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);      // per half: words 0, 1 (4, 5) of rows i, i + 1
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);  // words 2, 3 (6, 7)
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);      // word 0 (4) of rows i .. i + 3
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);  // word 1 (5)
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int g = 0; g < 4; ++g) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4 * Rows * g), _mm256_permute2x128_si256(u[g], u[g + 4], 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4 * Rows * (g + 4)),
                        _mm256_permute2x128_si256(u[g], u[g + 4], 0x31));
  }
}

// Packs `rows` (<= Rows) weight rows into one panel of Rows rows; missing rows get zero levels and
// scales. Decoder::decode(row, unit, levels, scales, offsets) yields the kUnit levels of one decoding
// unit (a block or a super-block) and the scale and offset of each of its kUnit / kBlock panel blocks.
// AllUnsigned (the VNNI panels of vnni_panel.h) stores a signed decoder's levels + 128 and moves the
// shift into the offset (-128 * scale), so that every panel holds unsigned levels and an offset.
template <typename Decoder, int Rows = kPanelRows, bool AllUnsigned = false>
void pack_panel(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  constexpr int B = Decoder::kBlock, U = Decoder::kUnit, blocks_per_unit = U / B;
  constexpr bool shift_signed = AllUnsigned && Decoder::kSigned;
  alignas(32) int8_t levels[Rows][U] = {};
  float scales[Rows][blocks_per_unit] = {}, offsets[Rows][blocks_per_unit] = {};
  for (int64_t unit = 0; unit < k / U; ++unit) {
    for (int r = 0; r < rows; ++r) {
      Decoder::decode(w + r * w_stride, unit, levels[r], scales[r], offsets[r]);
      if constexpr (shift_signed) {
        for (int i = 0; i < U; i += 32) {  // level + 128 as an unsigned byte is level ^ 0x80
          __m256i shifted = _mm256_xor_si256(load32(&levels[r][i]), _mm256_set1_epi8(static_cast<char>(0x80)));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(&levels[r][i]), shifted);
        }
        for (int j = 0; j < blocks_per_unit; ++j) offsets[r][j] = -128.0f * scales[r][j];
      }
    }
    for (int j = 0; j < blocks_per_unit; ++j) {
      uint8_t* block = panel + (unit * blocks_per_unit + j) * panel_block_bytes<B, Rows>();
      if constexpr (B == 32) {
        for (int r = 0; r < Rows; r += 8) interleave_8_rows<Rows>(&levels[r][j * B], U, block + 4 * r);
      } else {
        for (int g = 0; g < B / 4; ++g) {
          for (int r = 0; r < Rows; ++r) std::memcpy(block + 4 * Rows * g + 4 * r, &levels[r][j * B + 4 * g], 4);
        }
      }
      auto* scale_out = reinterpret_cast<float*>(block + Rows * B);
      for (int r = 0; r < Rows; ++r) {
        scale_out[r] = scales[r][j];
        scale_out[Rows + r] = offsets[r][j];
      }
    }
  }
}

inline __m256i broadcast4(const int8_t* p) {
  int32_t word;
  std::memcpy(&word, p, sizeof(word));
  return _mm256_set1_epi32(word);
}

// out[c * out_stride + r] for r < rows, c < C: one panel against C activation rows over all blocks.
template <typename Decoder, int C>
void panel_times_acts(int64_t blocks, const uint8_t* panel, const uint8_t* act, size_t act_stride, float* out,
                      size_t out_stride, int rows) {
  constexpr int B = Decoder::kBlock, groups = B / 4, flush = Decoder::kFlush;
  using Act = ActBlockOf<B>;
  const __m256i ones = _mm256_set1_epi16(1);
  const Act* a[C];
  for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const Act*>(act + c * act_stride);
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = panel + b * panel_block_bytes<B>();
    __m256i sums[C];
    for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
    // One activation row at a time through the block's groups (the weight vectors are reloaded from
    // L1 per row): with all C rows interleaved GCC kept the int16 partial sums in memory.
    for (int c = 0; c < C; ++c) {
      const int8_t* x = a[c][b].qs;
      for (int g0 = 0; g0 < groups; g0 += flush) {
        __m256i partial = _mm256_setzero_si256();
        for (int g = g0; g < g0 + flush; ++g) {
          __m256i w = load32(block + 32 * g);
          if constexpr (Decoder::kSigned) {
            partial = _mm256_add_epi16(
                partial, _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(broadcast4(x + 4 * g), w)));
          } else {
            partial = _mm256_add_epi16(partial, _mm256_maddubs_epi16(w, broadcast4(x + 4 * g)));
          }
        }
        sums[c] = _mm256_add_epi32(sums[c], _mm256_madd_epi16(partial, ones));
      }
    }
    const auto* scale_offset = reinterpret_cast<const float*>(block + kPanelRows * B);
    __m256 scale = _mm256_loadu_ps(scale_offset);
    for (int c = 0; c < C; ++c) {
      __m256 scale_c = _mm256_mul_ps(scale, _mm256_set1_ps(a[c][b].d));
      acc[c] = _mm256_fmadd_ps(scale_c, _mm256_cvtepi32_ps(sums[c]), acc[c]);
    }
    if constexpr (Decoder::kOffset) {
      __m256 offset = _mm256_loadu_ps(scale_offset + kPanelRows);
      for (int c = 0; c < C; ++c) acc[c] = _mm256_fmadd_ps(offset, _mm256_set1_ps(a[c][b].sum), acc[c]);
    }
  }
  // All sums leave the registers first: a runtime-length loop touching acc would make the compiler
  // keep acc in memory, storing it on every step of the block loop.
  alignas(32) float lanes[C][kPanelRows];
  for (int c = 0; c < C; ++c) _mm256_store_ps(lanes[c], acc[c]);
  for (int c = 0; c < C; ++c) std::copy(lanes[c], lanes[c] + rows, out + c * out_stride);
}

struct Panels {  // the AVX2 packer and register tile that panel_gemm_tile (panel_loop.h) runs
  template <typename D> static constexpr auto pack = &pack_panel<D>;
  template <typename D, int C> static constexpr auto times = &panel_times_acts<D, C>;
};
template <typename D> constexpr DotTileFn gemm_tile = panel_gemm_tile<kPanelRows, Panels, D>;

// A type's AVX2 kernels: its dequantizer, the register-tiled row dots of Dot and the matrix-matrix
// panels of Panel (against gemm_act_format activation rows).
template <typename Dot, typename Panel>
void set_type_kernels(TypeKernels& kernels, DequantizeRowFn dequantize, ActFormat gemm_act_format = ActFormat::Q8_32) {
  kernels.dequantize_row = dequantize;
  kernels.dot_tile = dot_tile_tiled<Dot>;
  kernels.gemm_tile = gemm_tile<Panel>;
  kernels.gemm_act_format = gemm_act_format;
}

}  // namespace qvl::avx2
