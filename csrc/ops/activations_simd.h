// The activation functions for a vector type V (simd/vec_*.h), instantiated by each ISA's ops file.
// The ViT applies its activation to tens of millions of values per image and the decoder's SwiGLU to
// every MLP value of a prompt, where a scalar exp costs seconds. No intrinsics here.
#pragma once
#include <cstdint>

#include "simd/loops.h"
#include "simd/vec_math.h"

namespace qvl::simd {

template <typename V>
void silu_mul(float* gate, const float* up, int64_t n) {
  over_vectors<V>(n, [&](int64_t i, auto part) {
    store<V>(gate + i, V::mul(x_sigmoid<V>(load<V>(gate + i, part), 1.0f), load<V>(up + i, part)), part);
  });
}

template <typename V>
void quick_gelu(float* x, int64_t n) {
  map_in_place<V>(x, n, [](typename V::F v) { return x_sigmoid<V>(v, 1.702f); });
}

// x * (1 + erf(x / sqrt 2)) / 2, erf within 1.5e-7 (vec_math.h).
template <typename V>
void gelu_erf(float* x, int64_t n) {
  map_in_place<V>(x, n, [](typename V::F v) {
    const auto cdf = V::mul(V::set1(0.5f), V::add(V::set1(1.0f), erf<V>(V::mul(v, V::set1(0.70710678118654752f)))));
    return V::mul(v, cdf);
  });
}

// x * (1 + tanh(u)) / 2 with u = sqrt(2 / pi) (x + 0.044715 x^3), as x * sigmoid(2u): the same
// function without the cancellation of 1 + tanh(u) for negative x.
template <typename V>
void gelu_tanh(float* x, int64_t n) {
  map_in_place<V>(x, n, [](typename V::F v) {
    const auto cube = V::mul(V::mul(v, v), v);
    const auto two_u = V::mul(V::set1(2.0f * 0.7978845608028654f), V::fma(V::set1(0.044715f), cube, v));
    return V::div(v, V::add(V::set1(1.0f), exp<V>(V::sub(V::zero(), two_u))));
  });
}

}  // namespace qvl::simd
