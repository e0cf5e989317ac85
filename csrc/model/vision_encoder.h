// The vision encoder: Conv3D patch embedding, `num_layers` pre-norm ViT blocks with 2-D rotary
// attention restricted to each frame (or to windows of it), the 2x2 patch merger, and the deepstack
// mergers where the spec lists taps. Which norm, MLP, attention pattern and merger: the VisionSpec.
// Weights are views into the GGUF (llama.cpp's names, or the ones the spec gives); only the patch
// embedding is repacked, once, into one float matrix.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/kernels.h"
#include "gguf/gguf_file.h"
#include "model/activation_dump.h"
#include "model/merger.h"
#include "model/model_spec.h"
#include "model/position_embedding.h"
#include "model/vision_rope.h"
#include "model/vision_weights.h"

namespace qvl {

// Where encode() writes.
struct VisionOutputs {
  float* embeddings = nullptr;  // output_rows() x output_width()
  // deepstack_taps() x tokens x out_hidden (the merged rows' order), or null to skip the deepstack mergers.
  float* deepstack = nullptr;
  // Receives "patch_embed" (the first block's input: the patch embeddings, plus the learned positions
  // where the spec has them), "block.<i>" (each block's output), "deepstack.<k>" and "merger", all in
  // the preprocessor's patch / token order, when given.
  ActivationDump* dump = nullptr;
};

class VisionEncoder {
 public:
  // Checks every tensor against the spec (ModelFormatError names the first that does not fit).
  // The pool is shared with the decoder of the same model.
  VisionEncoder(std::shared_ptr<GgufFile> file, const VisionSpec& spec, std::shared_ptr<ThreadPool> pool);

  const VisionSpec& spec() const { return spec_; }
  // Values per patch row of pixel_values: channels x temporal_patch_size x patch_size x patch_size.
  int64_t patch_values() const { return patch_embed_.cols; }
  int64_t deepstack_taps() const { return static_cast<int64_t>(deepstack_mergers_.size()); }

  // Throws std::invalid_argument unless the grids describe exactly n_patches rows of patch_values():
  // every t, h, w positive, h and w multiples of the merge size, and sum(t * h * w) == n_patches.
  void validate(int64_t n_patches, int64_t values_per_patch, const std::vector<GridThw>& grids) const;
  int64_t output_rows(int64_t n_patches, bool pre_merge) const;
  int64_t output_width(bool pre_merge) const;

  // pixels: n_patches rows of patch_values() floats (normalised, as the preprocessor emits them).
  // pre_merge: the last block's patch features [n_patches, hidden] (before the merger's norm);
  // otherwise the merged embeddings [n_patches / merge^2, out_hidden]. Both in the preprocessor's order.
  void encode(const float* pixels, int64_t n_patches, const std::vector<GridThw>& grids, bool pre_merge,
              Precision precision, const VisionOutputs& out) const;

 private:
  struct Block {
    Norm norm1;
    Linear q, k, v, out;
    Norm norm2;
    Linear gate, up, down;  // gate: VisionMlpKind::SwiGlu only
  };
  struct Activations;

  void load_patch_embedding();
  Block load_block(int64_t index) const;
  void load_position_grid();
  void embed_patches(const float* pixels, const std::vector<GridThw>& grids, Activations& a, Precision precision,
                     ActivationDump* dump) const;
  void run_block(const Block& block, int64_t index, Activations& a, Precision precision) const;
  void mlp(const Block& block, Activations& a, Precision precision) const;
  // x (attention order) copied to out in the preprocessor's patch order.
  void restore_patch_order(const Activations& a, float* out) const;
  void merge(const PatchMerger& merger, const Activations& a, Precision precision, float* out) const;

  std::shared_ptr<GgufFile> file_;
  VisionSpec spec_;
  std::shared_ptr<ThreadPool> pool_;
  int64_t head_dim_;
  std::vector<float> patch_embed_values_;  // [hidden][channel][t][row][col], the pixel rows' order
  WeightView patch_embed_;                 // F32 view of patch_embed_values_
  const float* patch_bias_ = nullptr;
  std::vector<float> position_values_;  // the position grid as F32, when the file stores another type
  std::optional<PositionGrid> position_grid_;
  std::vector<Block> blocks_;
  std::vector<bool> windowed_layer_;       // per block: attends within windows (else within frames)
  PatchMerger merger_;
  std::vector<PatchMerger> deepstack_mergers_;
  std::vector<int64_t> deepstack_tap_of_layer_;  // per block: its deepstack merger, or -1
};

}  // namespace qvl
