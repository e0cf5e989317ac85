// RMSNorm and LayerNorm for a vector type V (simd/vec_*.h), instantiated by each ISA's ops file: the
// scalar references' statistics (in double, V::sum / V::sum_squares) and their float steps in the
// same order, a vector at a time. No intrinsics here.
#pragma once
#include <cmath>
#include <cstdint>

#include "simd/loops.h"

namespace qvl::simd {

template <typename V>
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(V::sum_squares(x, n, 0.0) / n + eps));
  const auto scale = V::set1(inv_rms);
  over_vectors<V>(n, [&](int64_t i, auto part) {
    store<V>(out + i, V::mul(V::mul(load<V>(x + i, part), scale), load<V>(weight + i, part)), part);
  });
}

template <typename V>
void layer_norm(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* out) {
  const double mean = V::sum(x, n) / n;
  const float inv_std = static_cast<float>(1.0 / std::sqrt(V::sum_squares(x, n, mean) / n + eps));
  const auto center = V::set1(static_cast<float>(mean)), scale = V::set1(inv_std);
  over_vectors<V>(n, [&](int64_t i, auto part) {
    const auto normed = V::mul(V::mul(V::sub(load<V>(x + i, part), center), scale), load<V>(weight + i, part));
    store<V>(out + i, V::add(normed, load<V>(bias + i, part)), part);
  });
}

}  // namespace qvl::simd
