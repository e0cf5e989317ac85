// The scalar reference of the K-quants with 8 sub-blocks of 32 and a scale and a minimum per
// sub-block (Q4_K, Q5_K: x = d * sc * q - dmin * mn), written once over a type's level layout: the
// Layout gives the Block, the top level, how level l of sub-block s is read (level) and written
// (clear, set_level). q4_k.cpp and q5_k.cpp hold only their layouts.
#pragma once
#include <cstdint>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/k_quant_fit.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar::k_quant {

constexpr int kSubBlocks = 8;
constexpr int kSubBlock = 32;

template <typename Layout>
void dequantize(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const typename Layout::Block*>(src);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const auto& block = blocks[b];
    float d = half_to_float(block.d), dmin = half_to_float(block.dmin);
    for (int s = 0; s < kSubBlocks; ++s) {
      uint8_t sc, mn;
      unpack_scale_min_k(block.scales, s, &sc, &mn);
      float scale = d * sc, min = dmin * mn;
      float* out = dst + b * kBlockK + s * kSubBlock;
      for (int l = 0; l < kSubBlock; ++l) out[l] = scale * static_cast<float>(Layout::level(block, s, l)) - min;
    }
  }
}

template <typename Layout>
void quantize(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<typename Layout::Block*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    auto& block = blocks[b];
    const SuperBlockScales fitted = fit_super_block_scales(x, Layout::kTop, block.scales);
    block.d = fitted.d;
    block.dmin = fitted.dmin;
    // Levels are chosen against the scales as stored, so rounding the scales costs as little as possible.
    float d = half_to_float(block.d), dmin = half_to_float(block.dmin);
    Layout::clear(block);
    for (int s = 0; s < kSubBlocks; ++s) {
      float scale = d * fitted.scale[s], min = dmin * fitted.min[s];
      for (int l = 0; l < kSubBlock; ++l) {
        Layout::set_level(block, s, l, nearest_level(x[s * kSubBlock + l], scale, min, Layout::kTop));
      }
    }
  }
}

// Per super-block: da * (d * sum_s sc_s * m_s * sum(q * qa) - dmin * sum_s mn_s * m_s * sum(qa)), all sums
// integer (m_s: the activation's sub-block multipliers).
template <typename Layout>
float dot(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const typename Layout::Block*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_K*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    int32_t scaled = 0, offsets = 0;
    for (int s = 0; s < kSubBlocks; ++s) {
      uint8_t sc, mn;
      unpack_scale_min_k(w[b].scales, s, &sc, &mn);
      int32_t sumi = 0;
      for (int l = 0; l < kSubBlock; ++l) sumi += Layout::level(w[b], s, l) * a[b].qs[s * kSubBlock + l];
      const int32_t m = a[b].multipliers[s];
      scaled += sc * m * sumi;
      offsets += mn * m * (a[b].bsums[2 * s] + a[b].bsums[2 * s + 1]);
    }
    sum += a[b].d * (half_to_float(w[b].d) * static_cast<float>(scaled) -
                     half_to_float(w[b].dmin) * static_cast<float>(offsets));
  }
  return sum;
}

// The matrix-matrix product's reference, against ActQ8_32 blocks (a scale per 32 values, one per
// sub-block): sum_s da_s * (d * sc_s * sum(q * qa) - dmin * mn_s * sum(qa)).
template <typename Layout>
float dot_per_sub_block(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const typename Layout::Block*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_32*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float d = half_to_float(w[b].d), dmin = half_to_float(w[b].dmin);
    for (int s = 0; s < kSubBlocks; ++s) {
      uint8_t sc, mn;
      unpack_scale_min_k(w[b].scales, s, &sc, &mn);
      const ActQ8_32& act = a[b * kSubBlocks + s];
      int32_t sumi = 0;
      for (int l = 0; l < kSubBlock; ++l) sumi += Layout::level(w[b], s, l) * act.qs[l];
      sum += act.d * d * static_cast<float>(sc) * static_cast<float>(sumi) - dmin * static_cast<float>(mn) * act.sum;
    }
  }
  return sum;
}

// The type's table entry: the reference dequantizer, encoder, row dot (against ActQ8_K blocks) and
// matrix-matrix product (against ActQ8_32 blocks).
template <typename Layout>
TypeKernels kernels() {
  return {dequantize<Layout>, quantize<Layout>, ActFormat::Q8_K, dot_tile_by_rows<dot<Layout>>,
          dot_tile_by_rows<dot_per_sub_block<Layout>>, ActFormat::Q8_32};
}

}  // namespace qvl::scalar::k_quant
