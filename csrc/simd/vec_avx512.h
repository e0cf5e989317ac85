// AVX-512 as a vector type for the ISA-neutral SIMD code (simd/*.h, ops/*_simd.h, kernels/float_gemm.h):
// 16 float lanes and the few operations that code is written in, each one instruction or a short,
// fixed sequence. Include only from files compiled for AVX-512 (*_avx512.cpp, *_amx.cpp).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace qvl::avx512 {

struct Vec {
  using F = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;

  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  // The first n (< kLanes) lanes; the others read as 0 and are not written.
  static F load_first(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store_first(float* p, F v, int64_t n) { _mm512_mask_storeu_ps(p, first(n), v); }

  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }    // a * b + c, one rounding
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a * b, one rounding
  static F abs(F x) { return _mm512_abs_ps(x); }
  // |magnitude| with the sign of x (magnitude must be >= 0).
  static F with_sign_of(F magnitude, F x) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude),
                                               _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN))));
  }
  static F round(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for whole n in [-126, 127], built in the exponent bits.
  static F exp2_whole(F n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static Mask greater(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static F select(Mask m, F if_set, F if_clear) { return _mm512_mask_mov_ps(if_clear, m, if_set); }
  static float reduce_add(F v) { return _mm512_reduce_add_ps(v); }
  static float reduce_max(F v) { return _mm512_reduce_max_ps(v); }

  // sum x[i] and sum (x[i] - center)^2 over n values, in double (8 lanes at a time).
  static double sum(const float* x, int64_t n) {
    __m512d acc = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
    double total = _mm512_reduce_add_pd(acc);
    for (; i < n; ++i) total += x[i];
    return total;
  }
  static double sum_squares(const float* x, int64_t n, double center) {
    const __m512d c = _mm512_set1_pd(center);
    __m512d acc = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), c);
      acc = _mm512_fmadd_pd(d, d, acc);
    }
    double total = _mm512_reduce_add_pd(acc);
    for (; i < n; ++i) total += (x[i] - center) * (x[i] - center);
    return total;
  }

 private:
  static __mmask16 first(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }
};

}  // namespace qvl::avx512
