// The scale of one activation block, shared by every ISA's activation quantizer so they agree exactly.
#pragma once

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

}  // namespace qvl
