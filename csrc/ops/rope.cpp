// Applying rotary position embeddings, scalar reference: each head's pairs (j, j + head_dim / 2)
// turned by the angle of pair j, whose cosine and sine the caller computed. Which frequency and which
// coordinate make that angle is the model's business (model/mrope.cpp: the decoder's M-RoPE,
// model/vision_rope.cpp: the ViT's 2-D rope).
#include "kernels/strict_fp.h"

#include "ops/op_table.h"

namespace qvl::scalar {
namespace {

void rope(float* heads, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* first = heads + h * head_dim;
    float* second = first + half;
    for (int64_t j = 0; j < half; ++j) {
      const float a = first[j], b = second[j];
      first[j] = a * cos[j] - b * sin[j];
      second[j] = b * cos[j] + a * sin[j];
    }
  }
}

}  // namespace

void add_rope(IsaOps& table) { table.rope = rope; }

}  // namespace qvl::scalar
