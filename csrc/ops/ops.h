// The row ops the model forwards call between their matmuls: norms, activations, RoPE, softmax.
// Each works on one row (or one token's heads); the callers loop (or thread) over rows. Each call
// runs the active ISA's entry of the op table (op_table.h).
#pragma once
#include <cstdint>

namespace qvl {

// out = x / rms(x) * weight over n values (Qwen2's RMSNorm, statistics in double); out may be x.
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out);
// rms_norm of each of n_heads heads of head_dim values in place, with the same head_dim weights for
// every head (Qwen3's q/k norm).
void rms_norm_heads(float* heads, int64_t n_heads, int64_t head_dim, const float* weight, float eps);
// out = (x - mean) / std * weight + bias (the ViT's LayerNorm); out may be x.
void layer_norm(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* out);
void add_in_place(float* y, const float* x, int64_t n);  // y += x
void silu_mul_in_place(float* gate, const float* up, int64_t n);  // gate = silu(gate) * up
void quick_gelu_in_place(float* x, int64_t n);  // x * sigmoid(1.702 x), Qwen2-VL's ViT activation
void gelu_in_place(float* x, int64_t n);        // exact erf GELU, the merger's activation
void gelu_tanh_in_place(float* x, int64_t n);   // GELU with the tanh approximation (Qwen3-VL's ViT)
void softmax_in_place(float* x, int64_t n);     // x = exp(x - max) / sum
// Rotates n_heads heads of head_dim values in place, pair j = (j, j + head_dim / 2) by the angle with
// cosine cos[j] and sine sin[j], j < head_dim / 2 (NeoX's rotate_half layout; mrope.cpp and
// vision_rope.cpp compute the angles).
void apply_rope(float* heads, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin);

}  // namespace qvl
