// NEON (AArch64 Advanced SIMD) as a vector type for the ISA-neutral SIMD code (simd/*.h, ops/*_simd.h,
// kernels/float_gemm.h): 4 float lanes and the few operations that code is written in, with the same
// steps as the x86 types. Include only from files compiled for NEON (*_neon.cpp).
#pragma once
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace qvl::neon {

struct Vec {
  using F = float32x4_t;
  using Mask = uint32x4_t;  // all-ones lanes where set
  static constexpr int kLanes = 4;

  static F zero() { return vdupq_n_f32(0.0f); }
  static F set1(float x) { return vdupq_n_f32(x); }
  static F load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, F v) { vst1q_f32(p, v); }
  // The first n (< kLanes) lanes; the others read as 0 and are not written.
  static F load_first(const float* p, int64_t n) {
    float lanes[kLanes] = {};
    std::memcpy(lanes, p, static_cast<size_t>(n) * sizeof(float));
    return vld1q_f32(lanes);
  }
  static void store_first(float* p, F v, int64_t n) {
    float lanes[kLanes];
    vst1q_f32(lanes, v);
    std::memcpy(p, lanes, static_cast<size_t>(n) * sizeof(float));
  }

  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F sub(F a, F b) { return vsubq_f32(a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F div(F a, F b) { return vdivq_f32(a, b); }
  static F min(F a, F b) { return vminq_f32(a, b); }
  static F max(F a, F b) { return vmaxq_f32(a, b); }
  static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }   // a * b + c, one rounding
  static F fnma(F a, F b, F c) { return vfmsq_f32(c, a, b); }  // c - a * b, one rounding
  static F abs(F x) { return vabsq_f32(x); }
  // |magnitude| with the sign of x (magnitude must be >= 0).
  static F with_sign_of(F magnitude, F x) {
    const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(magnitude), sign));
  }
  static F round(F x) { return vrndnq_f32(x); }  // to nearest, ties to even, as the x86 types
  // 2^n for whole n in [-126, 127], built in the exponent bits.
  static F exp2_whole(F n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23));
  }
  static Mask greater(F a, F b) { return vcgtq_f32(a, b); }
  static F select(Mask m, F if_set, F if_clear) { return vbslq_f32(m, if_set, if_clear); }
  static float reduce_add(F v) { return vaddvq_f32(v); }
  static float reduce_max(F v) { return vmaxvq_f32(v); }

  // sum x[i] and sum (x[i] - center)^2 over n values, in double (2 lanes at a time, two chains).
  static double sum(const float* x, int64_t n) {
    float64x2_t low = vdupq_n_f64(0.0), high = low;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      const float32x4_t v = vld1q_f32(x + i);
      low = vaddq_f64(low, vcvt_f64_f32(vget_low_f32(v)));
      high = vaddq_f64(high, vcvt_high_f64_f32(v));
    }
    double total = vaddvq_f64(vaddq_f64(low, high));
    for (; i < n; ++i) total += x[i];
    return total;
  }
  static double sum_squares(const float* x, int64_t n, double center) {
    const float64x2_t c = vdupq_n_f64(center);
    float64x2_t low = vdupq_n_f64(0.0), high = low;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      const float32x4_t v = vld1q_f32(x + i);
      const float64x2_t first = vsubq_f64(vcvt_f64_f32(vget_low_f32(v)), c);
      const float64x2_t second = vsubq_f64(vcvt_high_f64_f32(v), c);
      low = vfmaq_f64(low, first, first);
      high = vfmaq_f64(high, second, second);
    }
    double total = vaddvq_f64(vaddq_f64(low, high));
    for (; i < n; ++i) total += (x[i] - center) * (x[i] - center);
    return total;
  }
};

}  // namespace qvl::neon
