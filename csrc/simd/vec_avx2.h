// AVX2 + FMA as a vector type for the ISA-neutral SIMD code (simd/*.h, ops/*_simd.h, kernels/float_gemm.h):
// 8 float lanes and the few operations that code is written in, with the same steps as the AVX-512
// type (vec_avx512.h), so a lane computes the same bits on either. Include only from files compiled
// with AVX2 (*_avx2.cpp).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace qvl::avx2 {

struct Vec {
  using F = __m256;
  using Mask = __m256;  // all-ones lanes where set
  static constexpr int kLanes = 8;

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  // The first n (< kLanes) lanes; the others read as 0 and are not written.
  static F load_first(const float* p, int64_t n) {
    alignas(32) float lanes[kLanes] = {};
    std::memcpy(lanes, p, static_cast<size_t>(n) * sizeof(float));
    return _mm256_load_ps(lanes);
  }
  static void store_first(float* p, F v, int64_t n) {
    alignas(32) float lanes[kLanes];
    _mm256_store_ps(lanes, v);
    std::memcpy(p, lanes, static_cast<size_t>(n) * sizeof(float));
  }

  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }    // a * b + c, one rounding
  static F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a * b, one rounding
  static F abs(F x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  // |magnitude| with the sign of x (magnitude must be >= 0).
  static F with_sign_of(F magnitude, F x) { return _mm256_or_ps(magnitude, _mm256_and_ps(x, _mm256_set1_ps(-0.0f))); }
  static F round(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for whole n in [-126, 127], built in the exponent bits.
  static F exp2_whole(F n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static Mask greater(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static F select(Mask m, F if_set, F if_clear) { return _mm256_blendv_ps(if_clear, if_set, m); }
  static float reduce_add(F v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    return _mm_cvtss_f32(_mm_add_ss(sum, _mm_movehdup_ps(sum)));
  }
  static float reduce_max(F v) {
    __m128 best = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    best = _mm_max_ps(best, _mm_movehl_ps(best, best));
    return _mm_cvtss_f32(_mm_max_ss(best, _mm_movehdup_ps(best)));
  }

  // sum x[i] and sum (x[i] - center)^2 over n values, in double (4 lanes at a time, two chains).
  static double sum(const float* x, int64_t n) {
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double total = reduce_add(_mm256_add_pd(low, high));
    for (; i < n; ++i) total += x[i];
    return total;
  }
  static double sum_squares(const float* x, int64_t n, double center) {
    const __m256d c = _mm256_set1_pd(center);
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      const __m256d first = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), c);
      const __m256d second = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), c);
      low = _mm256_fmadd_pd(first, first, low);
      high = _mm256_fmadd_pd(second, second, high);
    }
    double total = reduce_add(_mm256_add_pd(low, high));
    for (; i < n; ++i) total += (x[i] - center) * (x[i] - center);
    return total;
  }

 private:
  static double reduce_add(__m256d v) {
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, v);
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  }
};

}  // namespace qvl::avx2
