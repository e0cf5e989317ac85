// The activation quantizers of the vector ISAs, written once over an ISA's two primitives (Levels:
// max_magnitude(x, n) and levels32(x, inverse, q, sums), which rounds 32 values to int8 levels and
// returns the sums of values 0..15 and 16..31): every layout the kernels read, with the very same levels
// as the scalar reference (act_quant.cpp). ISA-neutral: each ISA file instantiates it with its own
// primitives (act_quant_avx2.cpp, act_quant_neon.cpp).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/act_quant_scale.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"

namespace qvl::act_quant {

// fn(b, x, scale) for each run b of Values values x of the row, with the scale of their largest magnitude.
template <typename Levels, int Values, typename Fn>
void for_each_scaled_run(const float* src, int64_t k, Fn fn) {
  for (int64_t b = 0; b < k / Values; ++b) {
    const float* x = src + b * Values;
    fn(b, x, activation_scale(Levels::max_magnitude(x, Values)));
  }
}

template <typename Levels>
void quantize_q8_32(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_32*>(dst);
  for_each_scaled_run<Levels, kBlock32>(src, k, [&](int64_t b, const float* x, ActivationScale scale) {
    int sums[2];
    Levels::levels32(x, scale.inverse, blocks[b].qs, sums);
    blocks[b].d = scale.d;
    blocks[b].sum = scale.d * static_cast<float>(sums[0] + sums[1]);
  });
}

template <typename Levels>
void quantize_q8_k(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_K*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    float sub_block_amax[kBlockK / 32];
    for (int s = 0; s < kBlockK / 32; ++s) sub_block_amax[s] = Levels::max_magnitude(x + 32 * s, 32);
    const SuperBlockScale base = super_block_scale(sub_block_amax);
    blocks[b].d = base.d;
    for (int s = 0; s < kBlockK / 32; ++s) {
      const SubBlockScale scale = sub_block_scale(base, sub_block_amax[s]);
      int sums[2];
      Levels::levels32(x + 32 * s, scale.inverse, blocks[b].qs + 32 * s, sums);
      blocks[b].bsums[2 * s] = static_cast<int16_t>(sums[0]);
      blocks[b].bsums[2 * s + 1] = static_cast<int16_t>(sums[1]);
      blocks[b].multipliers[s] = static_cast<uint8_t>(scale.multiplier);
    }
  }
}

// A scale per 16 values (Q6_K's sub-blocks, in its matrix-matrix kernels): each half of a 32-value run
// is rounded with its own scale (the levels primitive takes 32 values, so it runs once per half).
template <typename Levels>
void quantize_q8_16(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<ActQ8_16*>(dst);
  for_each_scaled_run<Levels, 16>(src, k, [&](int64_t b, const float* x, ActivationScale scale) {
    const float* run = x - (b % 2) * 16;  // the 32-value run holding this half
    alignas(32) int8_t q[32];
    int sums[2];
    Levels::levels32(run, scale.inverse, q, sums);
    std::memcpy(blocks[b].qs, q + (b % 2) * 16, 16);
    blocks[b].d = scale.d;
    blocks[b].sum = scale.d * static_cast<float>(sums[b % 2]);
  });
}

template <typename Levels>
void set_quantizers(IsaKernels& table) {
  table.quantize_act_q8_32 = quantize_q8_32<Levels>;
  table.quantize_act_q8_k = quantize_q8_k<Levels>;
  table.quantize_act_q8_16 = quantize_q8_16<Levels>;
}

}  // namespace qvl::act_quant
