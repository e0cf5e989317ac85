// The register-tiled product every ISA's float GEMM and attention kernels are built on:
//   acc[r][v] += sum_{p < depth} a[r * a_row + p * a_depth] * b[p * b_step + v * (lanes of a vector)]
// Each step loads `Vectors` vectors of b and meets each with `Rows` broadcast elements of a, so the
// accumulators hold a Rows x Vectors tile of outputs with no horizontal sums. What a "multiply-add"
// is comes from the Madd policy: FloatMadd below (an FMA on any vector type of simd/vec_*.h), or
// an integer one (the int8 attention's VNNI dot product). No intrinsics here.
//
// The loops over the tile are unrolled by pragma: without it GCC keeps the accumulators in memory and
// stores them on every step.
#pragma once
#include <cstdint>

namespace qvl::simd {

// Madd for float vectors of type V: acc += broadcast(*a) * b.
template <typename V>
struct FloatMadd {
  using A = float;
  using B = float;
  using Acc = typename V::F;
  using BVector = typename V::F;
  using AVector = typename V::F;
  static constexpr int64_t kVectorElements = V::kLanes;
  static BVector load_b(const float* b) { return V::load(b); }
  static AVector broadcast_a(const float* a) { return V::set1(*a); }
  static Acc madd(Acc acc, BVector b, AVector a) { return V::fma(a, b, acc); }
};

template <typename Madd, int Rows, int Vectors>
inline __attribute__((always_inline)) void broadcast_product(const typename Madd::A* a, int64_t a_row, int64_t a_depth,
                                                             const typename Madd::B* b, int64_t b_step, int64_t depth,
                                                             typename Madd::Acc (&acc)[Rows][Vectors]) {
  for (int64_t p = 0; p < depth; ++p) {
    typename Madd::BVector columns[Vectors];
#pragma GCC unroll 16
    for (int v = 0; v < Vectors; ++v) columns[v] = Madd::load_b(b + p * b_step + v * Madd::kVectorElements);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const typename Madd::AVector element = Madd::broadcast_a(a + r * a_row + p * a_depth);
#pragma GCC unroll 16
      for (int v = 0; v < Vectors; ++v) acc[r][v] = Madd::madd(acc[r][v], columns[v], element);
    }
  }
}

// Sets every accumulator of a float tile to zero.
template <typename V, int Rows, int Vectors>
inline __attribute__((always_inline)) void zero_tile(typename V::F (&acc)[Rows][Vectors]) {
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < Vectors; ++v) acc[r][v] = V::zero();
  }
}

}  // namespace qvl::simd
