// Transcendental functions written once over a vector type V (simd/vec_avx2.h, vec_avx512.h,
// vec_neon.h): each ISA gets the same steps and constants, so a lane computes the same bits on
// every x86 path (the decoder's attention relies on that: its avx2 and avx512 kernels agree exactly).
// No intrinsics here; include after the vector type of the including ISA file.
#pragma once

namespace qvl::simd {

// e^x within ~2 ulp for x in [-87, 88]: x = n ln2 + r with |r| <= ln2/2, e^r by the Cephes minimax
// polynomial, 2^n put into the exponent bits. Inputs are clamped to that range, so -inf gives ~1e-38
// (no sum of probabilities can tell it from 0) and large inputs stay finite.
template <typename V>
inline typename V::F exp(typename V::F x) {
  x = V::min(V::max(x, V::set1(-87.0f)), V::set1(88.0f));
  const auto n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  auto r = V::fnma(n, V::set1(0.693359375f), x);
  r = V::fnma(n, V::set1(-2.12194440e-4f), r);
  auto p = V::set1(1.9875691500e-4f);
  p = V::fma(p, r, V::set1(1.3981999507e-3f));
  p = V::fma(p, r, V::set1(8.3334519073e-3f));
  p = V::fma(p, r, V::set1(4.1665795894e-2f));
  p = V::fma(p, r, V::set1(1.6666665459e-1f));
  p = V::fma(p, r, V::set1(5.0000001201e-1f));
  p = V::fma(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
  return V::mul(p, V::exp2_whole(n));
}

// x * sigmoid(k x) = x / (1 + e^(-k x)).
template <typename V>
inline typename V::F x_sigmoid(typename V::F x, float k) {
  return V::div(x, V::add(V::set1(1.0f), exp<V>(V::mul(x, V::set1(-k)))));
}

// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
template <typename V>
inline typename V::F erf(typename V::F x) {
  const auto a = V::abs(x);
  const auto t = V::div(V::set1(1.0f), V::fma(V::set1(0.3275911f), a, V::set1(1.0f)));
  auto poly = V::set1(1.061405429f);
  poly = V::fma(poly, t, V::set1(-1.453152027f));
  poly = V::fma(poly, t, V::set1(1.421413741f));
  poly = V::fma(poly, t, V::set1(-0.284496736f));
  poly = V::fma(poly, t, V::set1(0.254829592f));
  poly = V::mul(poly, t);
  const auto e = exp<V>(V::sub(V::zero(), V::mul(a, a)));
  return V::with_sign_of(V::fnma(poly, e, V::set1(1.0f)), x);
}

}  // namespace qvl::simd
