// The scale of one activation block, shared by every ISA's activation quantizer so they agree exactly.
#pragma once
#include <algorithm>
#include <cmath>

namespace qvl {

// Blocks whose largest magnitude is below this are stored as zeros: 127 / amax would overflow a
// float, and such values contribute nothing measurable to a dot product.
constexpr float kSmallestActivationBlock = 1e-30f;

struct ActivationScale {
  float d;        // x ~= d * q
  float inverse;  // q = nearest-even(x * inverse), |q| <= 127
};

inline ActivationScale activation_scale(float amax) {
  if (!(amax >= kSmallestActivationBlock)) return {0.0f, 0.0f};
  return {amax / 127.0f, 127.0f / amax};
}

// Q8_K's scales (ActQ8_K): a base d per 256 values and, per 32-value sub-block, the smallest multiplier
// m in 1..16 with 127 * d * m >= the sub-block's largest magnitude. With one scale per 256 values (as
// llama.cpp's Q8_K), a sub-block of small values gets few levels; a scale per sub-block is finer (the
// mean text logit error of a Q4_K_M file falls by a quarter), and as a multiple of a common base it
// keeps the kernels' integer sub-block scaling (weight scale x multiplier: at most 63 x 16, or 127 x 16
// for Q6_K, whose int32 super-block sums then stay below 2^31). When every sub-block reaches the
// super-block's maximum, all m are 16 and the levels are Q8_K's.
constexpr int kSubBlockMultipliers = 16;

struct SuperBlockScale {
  float d;  // the base: amax / (127 * 16)
  float amax;
};

// The base of a super-block from its 8 sub-blocks' largest magnitudes.
inline SuperBlockScale super_block_scale(const float (&sub_block_amax)[8]) {
  const float amax = *std::max_element(sub_block_amax, sub_block_amax + 8);
  if (!(amax >= kSmallestActivationBlock)) return {0.0f, 0.0f};
  return {amax / (127.0f * kSubBlockMultipliers), amax};
}

struct SubBlockScale {
  int multiplier;
  float inverse;  // q = nearest-even(x * inverse), |q| <= 127
};

inline SubBlockScale sub_block_scale(const SuperBlockScale& base, float sub_block_amax) {
  if (base.d == 0.0f) return {1, 0.0f};
  int m = static_cast<int>(std::ceil(static_cast<float>(kSubBlockMultipliers) * sub_block_amax / base.amax));
  m = std::min(std::max(m, 1), kSubBlockMultipliers);
  return {m, 1.0f / (base.d * static_cast<float>(m))};
}

}  // namespace qvl
