// Softmax of a row in place for a vector type V (simd/vec_*.h): the max and the sum over the row's
// vectors, then one horizontal reduction each; exp as vec_math.h computes it. No intrinsics here.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "simd/loops.h"
#include "simd/vec_math.h"

namespace qvl::simd {

template <typename V>
void softmax(float* x, int64_t n) {
  const int64_t whole = n / V::kLanes * V::kLanes;
  auto best = V::set1(-INFINITY);
  for (int64_t i = 0; i < whole; i += V::kLanes) best = V::max(best, V::load(x + i));
  float max = V::reduce_max(best);
  for (int64_t i = whole; i < n; ++i) max = std::max(max, x[i]);
  const auto shift = V::set1(max);
  auto sums = V::zero();
  for (int64_t i = 0; i < whole; i += V::kLanes) {
    const auto e = exp<V>(V::sub(V::load(x + i), shift));
    V::store(x + i, e);
    sums = V::add(sums, e);
  }
  float sum = V::reduce_add(sums);
  if (whole < n) {  // the tail's lanes past n are never added
    const Part tail{n - whole};
    V::store_first(x + whole, exp<V>(V::sub(load<V>(x + whole, tail), shift)), tail.lanes);
    for (int64_t i = whole; i < n; ++i) sum += x[i];
  }
  const auto inverse = V::set1(1.0f / sum);
  map_in_place<V>(x, n, [&](typename V::F v) { return V::mul(v, inverse); });
}

}  // namespace qvl::simd
