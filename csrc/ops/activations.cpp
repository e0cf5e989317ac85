// The activation functions, scalar references: SiLU-multiply (the decoder's SwiGLU), QuickGELU
// (Qwen2-VL's ViT), GELU with erf (the merger) and with the tanh approximation (Qwen3-VL's ViT, as
// PyTorch's gelu(approximate="tanh")).
#include "kernels/strict_fp.h"

#include <cmath>

#include "ops/op_table.h"

namespace qvl::scalar {
namespace {

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void quick_gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
}

void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void gelu_tanh(float* x, int64_t n) {
  constexpr float kBeta = 0.7978845608028654f;  // sqrt(2 / pi)
  constexpr float kKappa = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float cube = x[i] * x[i] * x[i];
    x[i] = 0.5f * x[i] * (1.0f + std::tanh(kBeta * (x[i] + kKappa * cube)));
  }
}

}  // namespace

void add_activations(IsaOps& table) {
  table.silu_mul = silu_mul;
  table.quick_gelu = quick_gelu;
  table.gelu_erf = gelu_erf;
  table.gelu_tanh = gelu_tanh;
}

}  // namespace qvl::scalar
