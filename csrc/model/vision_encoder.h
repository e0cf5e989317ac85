// Qwen2-VL's vision encoder: Conv3D patch embedding, `num_layers` pre-LayerNorm ViT blocks with 2-D
// rotary attention restricted to each frame, and the 2x2 patch merger. Weights are views into the
// mmproj GGUF (llama.cpp's names); only the patch embedding is repacked, once, into one float matrix.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/kernels.h"
#include "gguf/gguf_file.h"
#include "model/merger.h"
#include "model/vision_rope.h"
#include "model/vision_weights.h"

namespace qvl {

// The sizes of python's VisionConfig (same names).
struct VisionHyperParams {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t patch_size = 0;
  int64_t temporal_patch_size = 0;
  int64_t spatial_merge_size = 0;
  int64_t merger_hidden_size = 0;
  int64_t out_hidden_size = 0;
  float layer_norm_eps = 1e-6f;
};

class VisionEncoder {
 public:
  // Checks every tensor against `params` (ModelFormatError names the first that does not fit).
  // The pool must outlive the encoder.
  VisionEncoder(std::shared_ptr<GgufFile> file, const VisionHyperParams& params, ThreadPool* pool);

  const VisionHyperParams& params() const { return params_; }
  // Values per patch row of pixel_values: channels x temporal_patch_size x patch_size x patch_size.
  int64_t patch_values() const { return patch_embed_.cols; }

  // Throws std::invalid_argument unless the grids describe exactly n_patches rows of patch_values():
  // every t, h, w positive, h and w multiples of the merge size, and sum(t * h * w) == n_patches.
  void validate(int64_t n_patches, int64_t values_per_patch, const std::vector<GridThw>& grids) const;
  int64_t output_rows(int64_t n_patches, bool pre_merge) const;
  int64_t output_width(bool pre_merge) const;

  // pixels: n_patches rows of patch_values() floats (normalised, as the preprocessor emits them).
  // out: output_rows() x output_width() floats. pre_merge: the last block's patch features [n_patches,
  // hidden] (before the merger's LayerNorm); otherwise the merged embeddings [n_patches / merge^2, out_hidden].
  void encode(const float* pixels, int64_t n_patches, const std::vector<GridThw>& grids, bool pre_merge,
              Precision precision, float* out) const;

 private:
  struct Block {
    const float* norm1_weight;
    const float* norm1_bias;
    Linear q, k, v, out;
    const float* norm2_weight;
    const float* norm2_bias;
    Linear up, down;
  };
  struct Activations;

  void load_patch_embedding();
  Block load_block(int64_t index) const;
  void run_block(const Block& block, Activations& a, Precision precision) const;

  std::shared_ptr<GgufFile> file_;
  VisionHyperParams params_;
  ThreadPool* pool_;
  int64_t head_dim_;
  std::vector<float> patch_embed_values_;  // [hidden][channel][t][row][col], the pixel rows' order
  WeightView patch_embed_;                 // F32 view of patch_embed_values_
  std::vector<Block> blocks_;
  PatchMerger merger_;
};

}  // namespace qvl
