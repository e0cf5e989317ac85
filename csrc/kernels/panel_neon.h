// The NEON matrix-matrix path (Fast precision, many activation rows), shared by the quantized types:
// the design of panel_avx2.h with the NEON int8 dot product (include only from *_neon.cpp).
//
// A chunk of weight rows is converted once into "panels" of 8 rows, whatever its GGUF type: per block
// of B values (B = 32, or 16 for Q6_K's sub-blocks), the int8 levels of each quad of 4 rows laid out
// so that 4 consecutive levels of each of the 4 rows form one 16-byte vector (group g of row r of quad
// q at 16 * (B / 4 * q + g) + 4 * r), then the 8 rows' float scale and offset (x = scale * level +
// offset). vdotq_laneq_s32 meets such a vector with group g of 16 activation levels held in one
// register: the 4 int32 lanes are the 4 rows' partial block dot products, so each weight vector is
// loaded once for the whole tile of activation rows, the block's scales apply as one vector, and no
// horizontal reduction is ever needed. Each weight block is decoded once per chunk of weight rows.
//
// The int8 dot product is signed x signed, so the levels keep their sign and a type's zero point
// (Q4_0's 8, Q5_0's 16, Q6_K's 32) comes off the levels themselves: only the types with a stored
// minimum (Q4_1, Q5_1, Q4_K, Q5_K) carry an offset, which meets the activation block's sum. The
// integer block sums are the same as the scalar reference's (same levels, same activation levels);
// only the float summation order differs.
//
// Speed is unmeasured on ARM hardware (developed and tested under qemu-user only); the tile sizes
// follow the AVX2 path: one panel (8 rows x k) stays in L1 while a tile of activation rows that fits
// in L2 streams past it, 4 activation rows per register tile (8 int32 block sums + 8 float sums).
#pragma once
#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/panel_loop.h"
#include "kernels/neon_common.h"

namespace qvl::neon {

constexpr int kPanelRows = 8;
constexpr int kPanelQuads = kPanelRows / 4;    // one int32x4 of block sums per quad of rows

template <int B>
constexpr size_t panel_block_bytes() {
  return panel_block_bytes_of<B, kPanelRows>();
}


// Levels `first` .. first + 15 of the 4 rows of a quad (row_stride bytes apart) as 4 groups of 4
// levels per row: a 4 x 4 transpose of 32-bit words, which the interleaving store does by itself.
inline void interleave_quad(const int8_t* rows, int row_stride, uint8_t* out) {
  uint32x4x4_t words;
  words.val[0] = vreinterpretq_u32_s8(vld1q_s8(rows));
  words.val[1] = vreinterpretq_u32_s8(vld1q_s8(rows + row_stride));
  words.val[2] = vreinterpretq_u32_s8(vld1q_s8(rows + 2 * row_stride));
  words.val[3] = vreinterpretq_u32_s8(vld1q_s8(rows + 3 * row_stride));
  vst4q_u32(reinterpret_cast<uint32_t*>(out), words);
}

// Packs `rows` (<= kPanelRows) weight rows into one panel; missing rows get zero levels and scales.
// Decoder::decode(row, unit, levels, scales, offsets) yields the kUnit signed levels of one decoding
// unit (a block or a super-block) and the scale and offset of each of its kUnit / kBlock panel blocks.
template <typename Decoder>
void pack_panel(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  constexpr int B = Decoder::kBlock, U = Decoder::kUnit, blocks_per_unit = U / B;
  alignas(16) int8_t levels[kPanelRows][U] = {};
  float scales[kPanelRows][blocks_per_unit] = {}, offsets[kPanelRows][blocks_per_unit] = {};
  for (int64_t unit = 0; unit < k / U; ++unit) {
    for (int r = 0; r < rows; ++r) Decoder::decode(w + r * w_stride, unit, levels[r], scales[r], offsets[r]);
    for (int j = 0; j < blocks_per_unit; ++j) {
      uint8_t* block = panel + (unit * blocks_per_unit + j) * panel_block_bytes<B>();
      for (int q = 0; q < kPanelQuads; ++q) {
        for (int v = 0; v < B / 16; ++v) interleave_quad(&levels[4 * q][j * B + 16 * v], U, block + B * 4 * q + 64 * v);
      }
      auto* scale_out = reinterpret_cast<float*>(block + kPanelRows * B);
      for (int r = 0; r < kPanelRows; ++r) {
        scale_out[r] = scales[r][j];
        scale_out[kPanelRows + r] = offsets[r][j];
      }
    }
  }
}

// sums[q][c] += the block dot products of quad q with activation row c over 16 values: the 4 groups
// of the quad at w (64 bytes), the activation rows' 16 levels in x.
template <int C>
inline void dot_16_values(const uint8_t* w, size_t quad_stride, const int8x16_t (&x)[C], int32x4_t (&sums)[kPanelQuads][C]) {
  for (int q = 0; q < kPanelQuads; ++q) {
    const auto* levels = reinterpret_cast<const int8_t*>(w + q * quad_stride);
    int8x16_t g0 = vld1q_s8(levels), g1 = vld1q_s8(levels + 16), g2 = vld1q_s8(levels + 32), g3 = vld1q_s8(levels + 48);
    for (int c = 0; c < C; ++c) {  // the lane must be a constant: the four groups spelled out
      sums[q][c] = vdotq_laneq_s32(sums[q][c], g0, x[c], 0);
      sums[q][c] = vdotq_laneq_s32(sums[q][c], g1, x[c], 1);
      sums[q][c] = vdotq_laneq_s32(sums[q][c], g2, x[c], 2);
      sums[q][c] = vdotq_laneq_s32(sums[q][c], g3, x[c], 3);
    }
  }
}

// out[c * out_stride + r] for r < rows, c < C: one panel against C activation rows over all blocks.
template <typename Decoder, int C>
void panel_times_acts(int64_t blocks, const uint8_t* panel, const uint8_t* act, size_t act_stride, float* out,
                      size_t out_stride, int rows) {
  constexpr int B = Decoder::kBlock;
  using Act = ActBlockOf<B>;
  const Act* a[C];
  for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const Act*>(act + c * act_stride);
  float32x4_t acc[kPanelQuads][C];
  for (int q = 0; q < kPanelQuads; ++q) {
    for (int c = 0; c < C; ++c) acc[q][c] = vdupq_n_f32(0.0f);
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = panel + b * panel_block_bytes<B>();
    int32x4_t sums[kPanelQuads][C];
    for (int q = 0; q < kPanelQuads; ++q) {
      for (int c = 0; c < C; ++c) sums[q][c] = vdupq_n_s32(0);
    }
    for (int v = 0; v < B / 16; ++v) {
      int8x16_t x[C];
      for (int c = 0; c < C; ++c) x[c] = vld1q_s8(a[c][b].qs + 16 * v);
      dot_16_values<C>(block + 64 * v, 4 * B, x, sums);
    }
    const auto* scale_offset = reinterpret_cast<const float*>(block + kPanelRows * B);
    for (int q = 0; q < kPanelQuads; ++q) {
      float32x4_t scale = vld1q_f32(scale_offset + 4 * q);
      for (int c = 0; c < C; ++c) {
        acc[q][c] = vfmaq_f32(acc[q][c], vmulq_n_f32(scale, a[c][b].d), vcvtq_f32_s32(sums[q][c]));
      }
      if constexpr (Decoder::kOffset) {
        float32x4_t offset = vld1q_f32(scale_offset + kPanelRows + 4 * q);
        for (int c = 0; c < C; ++c) acc[q][c] = vfmaq_n_f32(acc[q][c], offset, a[c][b].sum);
      }
    }
  }
  // All sums leave the registers first, so that the runtime-length copy does not keep acc in memory.
  float lanes[C][kPanelRows];
  for (int c = 0; c < C; ++c) {
    for (int q = 0; q < kPanelQuads; ++q) vst1q_f32(lanes[c] + 4 * q, acc[q][c]);
  }
  for (int c = 0; c < C; ++c) std::copy(lanes[c], lanes[c] + rows, out + c * out_stride);
}

struct Panels {  // the NEON packer and register tile that panel_gemm_tile (panel_loop.h) runs
  template <typename D> static constexpr auto pack = &pack_panel<D>;
  template <typename D, int C> static constexpr auto times = &panel_times_acts<D, C>;
};
template <typename D> constexpr DotTileFn gemm_tile = panel_gemm_tile<kPanelRows, Panels, D>;

}  // namespace qvl::neon
