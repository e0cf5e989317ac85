#include "model/layers.h"

#include <cmath>

#include "common/isa.h"

namespace qvl {

#if defined(QVL_HAVE_AVX2_BUILD)
namespace avx2 {
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out);
void silu_mul_in_place(float* gate, const float* up, int64_t n);
void quick_gelu_in_place(float* x, int64_t n);
void gelu_in_place(float* x, int64_t n);
// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), PyTorch's gelu(approximate="tanh").
void gelu_tanh_in_place(float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

float dot(const float* a, const float* b, int64_t n);
void axpy(float a, const float* x, float* y, int64_t n);
}  // namespace avx2
#define QVL_USE_AVX2(call) \
  if (runs_avx2_kernels(active_isa())) return avx2::call
#else
#define QVL_USE_AVX2(call)
#endif

#if defined(QVL_HAVE_AVX512_BUILD)
namespace avx512 {
void silu_mul_in_place(float* gate, const float* up, int64_t n);
void quick_gelu_in_place(float* x, int64_t n);
}  // namespace avx512
#define QVL_USE_AVX512(call) \
  if (runs_avx512_kernels(active_isa())) return avx512::call
#else
#define QVL_USE_AVX512(call)
#endif

void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  QVL_USE_AVX2(rms_norm(x, weight, n, eps, out));
  double sum_squares = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_squares / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv_rms * weight[i];
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* out) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  double mean = sum / n;
  double sum_squares = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_squares += (x[i] - mean) * (x[i] - mean);
  float inv_std = static_cast<float>(1.0 / std::sqrt(sum_squares / n + eps));
  float mean_f = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - mean_f) * inv_std * weight[i] + bias[i];
}

void add_in_place(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void silu_mul_in_place(float* gate, const float* up, int64_t n) {
  QVL_USE_AVX512(silu_mul_in_place(gate, up, n));
  QVL_USE_AVX2(silu_mul_in_place(gate, up, n));
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void quick_gelu_in_place(float* x, int64_t n) {
  QVL_USE_AVX512(quick_gelu_in_place(x, n));
  QVL_USE_AVX2(quick_gelu_in_place(x, n));
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
}

void gelu_in_place(float* x, int64_t n) {
  QVL_USE_AVX2(gelu_in_place(x, n));
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), PyTorch's gelu(approximate="tanh").
void gelu_tanh_in_place(float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

float dot(const float* a, const float* b, int64_t n) {
  QVL_USE_AVX2(dot(a, b, n));
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy(float a, const float* x, float* y, int64_t n) {
  QVL_USE_AVX2(axpy(a, x, y, n));
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void scale_in_place(float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

}  // namespace qvl
