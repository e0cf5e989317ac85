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
  for_each_scaled_run<Levels, kBlockK>(src, k, [&](int64_t b, const float* x, ActivationScale scale) {
    for (int chunk = 0; chunk < kBlockK / 32; ++chunk) {
      int sums[2];
      Levels::levels32(x + 32 * chunk, scale.inverse, blocks[b].qs + 32 * chunk, sums);
      blocks[b].bsums[2 * chunk] = static_cast<int16_t>(sums[0]);
      blocks[b].bsums[2 * chunk + 1] = static_cast<int16_t>(sums[1]);
    }
    blocks[b].d = scale.d;
  });
}

// Q8_K's levels (one scale per 256 values) written as blocks of 32 or 16, each with its own sum: the
// same integers as quantize_q8_k, in the layout the matrix-matrix kernels read.
template <typename Levels, typename Block, int Values>
void quantize_q8_k_as(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<Block*>(dst);
  for_each_scaled_run<Levels, kBlockK>(src, k, [&](int64_t b, const float* x, ActivationScale scale) {
    for (int chunk = 0; chunk < kBlockK / 32; ++chunk) {
      alignas(32) int8_t q[32];
      int sums[2];
      Levels::levels32(x + 32 * chunk, scale.inverse, q, sums);
      for (int part = 0; part < 32 / Values; ++part) {
        Block& block = blocks[b * (kBlockK / Values) + chunk * (32 / Values) + part];
        std::memcpy(block.qs, q + part * Values, Values);
        block.d = scale.d;
        const int sum = Values == 32 ? sums[0] + sums[1] : sums[part];
        block.sum = scale.d * static_cast<float>(sum);
      }
    }
  });
}

template <typename Levels>
void set_quantizers(IsaKernels& table) {
  table.quantize_act_q8_32 = quantize_q8_32<Levels>;
  table.quantize_act_q8_k = quantize_q8_k<Levels>;
  table.quantize_act_q8_k_as_32 = quantize_q8_k_as<Levels, ActQ8_32, 32>;
  table.quantize_act_q8_k_as_16 = quantize_q8_k_as<Levels, ActQ8_16, 16>;
}

}  // namespace qvl::act_quant
