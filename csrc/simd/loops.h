// Loops over the vectors of a row, written once for every vector type V (simd/vec_*.h): whole vectors,
// then the row's tail as one partial vector through the same code (no scalar tail to keep in step).
// No intrinsics here.
#pragma once
#include <cstdint>

namespace qvl::simd {

struct Whole {};  // a whole vector of V::kLanes values
struct Part {     // the first `lanes` (< V::kLanes) values of a vector
  int64_t lanes;
};

template <typename V>
inline typename V::F load(const float* p, Whole) { return V::load(p); }
template <typename V>
inline typename V::F load(const float* p, Part part) { return V::load_first(p, part.lanes); }
template <typename V>
inline void store(float* p, typename V::F v, Whole) { V::store(p, v); }
template <typename V>
inline void store(float* p, typename V::F v, Part part) { V::store_first(p, v, part.lanes); }

// step(i, Whole{}) for each whole vector at offset i of [0, n), then step(i, Part{n - i}) for the rest.
template <typename V, typename Step>
inline void over_vectors(int64_t n, Step&& step) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) step(i, Whole{});
  if (i < n) step(i, Part{n - i});
}

// x[i] = f(x[i]) for i < n.
template <typename V, typename Fn>
inline void map_in_place(float* x, int64_t n, Fn&& f) {
  over_vectors<V>(n, [&](int64_t i, auto part) { store<V>(x + i, f(load<V>(x + i, part)), part); });
}

}  // namespace qvl::simd
