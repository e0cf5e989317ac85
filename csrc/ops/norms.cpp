// RMSNorm and LayerNorm, scalar references: statistics in double (each square of a float is exact
// there), the normalised values in float as the reference models compute them, each product and sum
// rounded on its own (strict_fp.h) so the reference gives the same bits on every platform.
#include "kernels/strict_fp.h"

#include <cmath>

#include "ops/op_table.h"

namespace qvl::scalar {
namespace {

void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  double sum_squares = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_squares / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv_rms * weight[i];
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* out) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / n;
  double sum_squares = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_squares += (x[i] - mean) * (x[i] - mean);
  const float inv_std = static_cast<float>(1.0 / std::sqrt(sum_squares / n + eps));
  const float mean_f = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - mean_f) * inv_std * weight[i] + bias[i];
}

}  // namespace

void add_norms(IsaOps& table) {
  table.rms_norm = rms_norm;
  table.layer_norm = layer_norm;
}

}  // namespace qvl::scalar
