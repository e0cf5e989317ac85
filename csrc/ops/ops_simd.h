// Every entry of the op table (op_table.h) for a vector type V (simd/vec_*.h), with the attention
// kernels' register tiles as each ISA's ops file chose them. No intrinsics here.
#pragma once
#include "ops/activations_simd.h"
#include "ops/causal_attention_simd.h"
#include "ops/norms_simd.h"
#include "ops/op_table.h"
#include "ops/rope_simd.h"
#include "ops/softmax_simd.h"
#include "ops/vision_attention_simd.h"

namespace qvl::simd {

template <typename V, typename CausalGroupKernel, typename VisionAttentionKernel>
void set_ops(IsaOps& table) {
  table.rms_norm = rms_norm<V>;
  table.layer_norm = layer_norm<V>;
  table.silu_mul = silu_mul<V>;
  table.quick_gelu = quick_gelu<V>;
  table.gelu_erf = gelu_erf<V>;
  table.gelu_tanh = gelu_tanh<V>;
  table.softmax = softmax<V>;
  table.rope = rope<V>;
  table.causal_group = CausalGroupKernel::attend;
  table.causal_group_lanes = CausalGroupKernel::kLanes;
  table.vision_tile = VisionAttentionKernel::attend_tile;
}

}  // namespace qvl::simd
