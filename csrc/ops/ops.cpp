// The row ops' entry points: each forwards to the active ISA's op table.
#include "ops/ops.h"

#include "ops/op_table.h"

namespace qvl {
namespace {

const IsaOps& ops() { return isa_ops(active_isa()); }

}  // namespace

void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  ops().rms_norm(x, weight, n, eps, out);
}

void rms_norm_heads(float* heads, int64_t n_heads, int64_t head_dim, const float* weight, float eps) {
  const RmsNormFn norm = ops().rms_norm;
  for (int64_t h = 0; h < n_heads; ++h) norm(heads + h * head_dim, weight, head_dim, eps, heads + h * head_dim);
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* out) {
  ops().layer_norm(x, weight, bias, n, eps, out);
}

void add_in_place(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void silu_mul_in_place(float* gate, const float* up, int64_t n) { ops().silu_mul(gate, up, n); }
void quick_gelu_in_place(float* x, int64_t n) { ops().quick_gelu(x, n); }
void gelu_in_place(float* x, int64_t n) { ops().gelu_erf(x, n); }
void gelu_tanh_in_place(float* x, int64_t n) { ops().gelu_tanh(x, n); }
void softmax_in_place(float* x, int64_t n) { ops().softmax(x, n); }

void apply_rope(float* heads, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin) {
  ops().rope(heads, n_heads, head_dim, cos, sin);
}

}  // namespace qvl
