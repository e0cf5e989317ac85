// The per-ISA table of the model's ops other than matmul: norms, activations, RoPE, softmax and
// attention. Built once per ISA in the same way as the kernel table (kernels/kernel_table.h): the
// scalar references (norms.cpp, activations.cpp, rope.cpp, softmax.cpp, causal_attention.cpp,
// vision_attention.cpp) fill every entry but the int8 and fast attention tiles, then each ISA file lays
// its variants over them (ops_avx2.cpp, ops_avx512.cpp, ops_neon.cpp, which instantiate the ISA-neutral
// *_simd.h code with their vector type; vision_attention_int8_avx512.cpp, vision_attention_int16_avx512.cpp).
// The model reaches them through ops/ops.h.
#pragma once
#include <cstdint>

#include "common/isa.h"
#include "ops/attention_tiles.h"

namespace qvl {

// out = x / rms(x) * weight over n values (out may be x).
using RmsNormFn = void (*)(const float* x, const float* weight, int64_t n, float eps, float* out);
// out = (x - mean) / std * weight + bias over n values (out may be x).
using LayerNormFn = void (*)(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* out);
// x = f(x) over n values.
using InPlaceFn = void (*)(float* x, int64_t n);
// gate = f(gate) * up over n values.
using GatedFn = void (*)(float* gate, const float* up, int64_t n);
// Rotates n_heads heads of head_dim values in place, pair j = (j, j + head_dim / 2) (NeoX's
// rotate_half layout) by the angle whose cosine and sine are cos[j], sin[j], j < head_dim / 2.
using RopeFn = void (*)(float* heads, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin);
// Causal attention of a query group (attention_tiles.h) over its key/value head; keys and values are
// [position][head_dim]. scratch: (first_keys + n_positions - 1 + head_dim) * kMaxCausalGroupLanes floats.
using CausalGroupFn = void (*)(const QueryGroup& group, const float* keys, const float* values, float scale,
                               float* scratch);
using VisionTileFn = void (*)(const AttentionTile& tile, const AttentionScratch& scratch);
using Int8VisionTileFn = void (*)(const Int8AttentionTile& tile, const Int8AttentionScratch& scratch);

struct IsaOps {
  RmsNormFn rms_norm = nullptr;
  LayerNormFn layer_norm = nullptr;
  GatedFn silu_mul = nullptr;       // silu(gate) * up: the decoder's SwiGLU
  InPlaceFn quick_gelu = nullptr;   // x * sigmoid(1.702 x): Qwen2-VL's ViT
  InPlaceFn gelu_erf = nullptr;     // exact (erf) GELU: the merger
  InPlaceFn gelu_tanh = nullptr;    // PyTorch's gelu(approximate="tanh"): Qwen3-VL's ViT
  InPlaceFn softmax = nullptr;      // x = exp(x - max x) / sum
  RopeFn rope = nullptr;
  CausalGroupFn causal_group = nullptr;
  int64_t causal_group_lanes = 1;   // queries causal_group takes at once (<= kMaxCausalGroupLanes)
  VisionTileFn vision_tile = nullptr;
  VisionTileFn vision_tile_fast = nullptr;      // Fast's own tile (int16 scores), or null: Fast attends as Exact
  Int8VisionTileFn vision_tile_int8 = nullptr;  // null where the ISA has none: Int8 attends in float
};

// The table of an ISA, complete (scalar entries fill what the ISA does not provide).
const IsaOps& isa_ops(Isa isa);

namespace scalar {
void add_norms(IsaOps& table);
void add_activations(IsaOps& table);
void add_rope(IsaOps& table);
void add_softmax(IsaOps& table);
void add_causal_attention(IsaOps& table);
void add_vision_attention(IsaOps& table);
}  // namespace scalar

#if defined(QVL_HAVE_AVX2_BUILD)
namespace avx2 {
void add_ops(IsaOps& table);
}
#endif
#if defined(QVL_HAVE_AVX512_BUILD)
namespace avx512 {  // laid over the avx2 table
void add_ops(IsaOps& table);
void add_int8_vision_attention(IsaOps& table);
void add_int16_vision_attention(IsaOps& table);
}  // namespace avx512
#endif
#if defined(QVL_HAVE_NEON_BUILD)
namespace neon {
void add_ops(IsaOps& table);
}
#endif

}  // namespace qvl
