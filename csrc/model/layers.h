// Element-wise and row-wise building blocks shared by the decoder and the vision encoder.
// Each works on one row of `n` floats; the callers loop (or thread) over rows.
#pragma once
#include <cstdint>

namespace qvl {

// out = x / rms(x) * weight  (Qwen2's RMSNorm, statistics in float)
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out);
// out = (x - mean) / std * weight + bias  (the ViT's LayerNorm)
void layer_norm(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* out);
void add_in_place(float* y, const float* x, int64_t n);  // y += x
void silu_mul_in_place(float* gate, const float* up, int64_t n);  // gate = silu(gate) * up
void quick_gelu_in_place(float* x, int64_t n);  // x * sigmoid(1.702 x), Qwen2-VL's ViT activation
void gelu_in_place(float* x, int64_t n);        // exact erf GELU, the merger's activation
void gelu_tanh_in_place(float* x, int64_t n);   // tanh-approximated GELU, Qwen3-VL's ViT activation
float dot(const float* a, const float* b, int64_t n);
void axpy(float a, const float* x, float* y, int64_t n);  // y += a * x
void scale_in_place(float* x, float a, int64_t n);

}  // namespace qvl
