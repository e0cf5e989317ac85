// Applying rotary position embeddings for a vector type V (simd/vec_*.h): the scalar reference's
// products and sums (rope.cpp) in the same order, a vector of pairs at a time. No intrinsics here.
#pragma once
#include <cstdint>

#include "simd/loops.h"

namespace qvl::simd {

template <typename V>
void rope(float* heads, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* first = heads + h * head_dim;
    float* second = first + half;
    over_vectors<V>(half, [&](int64_t j, auto part) {
      const auto a = load<V>(first + j, part), b = load<V>(second + j, part);
      const auto c = load<V>(cos + j, part), s = load<V>(sin + j, part);
      store<V>(first + j, V::sub(V::mul(a, c), V::mul(b, s)), part);
      store<V>(second + j, V::add(V::mul(b, c), V::mul(a, s)), part);
    });
  }
}

}  // namespace qvl::simd
