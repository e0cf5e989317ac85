// The seam between the model forwards (model/) and the hardware they compute on: the forwards include
// this header and call nothing below it. Its entry points work on host float rows and GGUF weight views:
//   matmul, dequantize_rows (kernels/kernels.h)   the linear layers and embedding lookups
//   rms_norm, layer_norm, activations, apply_rope, softmax (ops/ops.h)
//   causal_attention (ops/causal_attention.h)     the decoder over its KV cache
//   SegmentedAttention (ops/vision_attention.h)   the ViT over frames (or windows)
// The one backend today is the CPU: every entry point runs the active ISA's table (kernels/kernel_table.h,
// ops/op_table.h), chosen once per ISA. A GPU backend (CUDA) comes back as another implementation of
// these entry points behind this header, with the model code unchanged.
#pragma once
#include "kernels/kernels.h"
#include "ops/causal_attention.h"
#include "ops/ops.h"
#include "ops/vision_attention.h"
