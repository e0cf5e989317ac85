// Qwen2-VL's patch merger: LayerNorm (`v.post_ln`, the reference's ln_q) on every patch, then each
// merge x merge window of consecutive patches concatenated into one row and sent through
// `mm.0` -> exact GELU -> `mm.2`, giving one language-model embedding per window.
#pragma once
#include <cstdint>

#include "common/thread_pool.h"
#include "kernels/kernels.h"
#include "gguf/gguf_file.h"
#include "model/vision_weights.h"

namespace qvl {

class PatchMerger {
 public:
  PatchMerger(const GgufFile& file, int64_t hidden, int64_t merge, int64_t merger_hidden, int64_t out_hidden);

  int64_t patches_per_token() const { return merge_ * merge_; }
  int64_t out_width() const { return project_.weight.rows; }

  // patches: n_patches rows of `hidden` floats, windows laid out as patch_positions() gives them
  // (n_patches a multiple of patches_per_token()). out: n_patches / patches_per_token() rows of out_width().
  void forward(const float* patches, int64_t n_patches, float* out, Precision precision, ThreadPool& pool) const;

 private:
  static constexpr float kNormEps = 1e-6f;  // fixed in the reference, not a config value

  int64_t hidden_;
  int64_t merge_;
  const float* norm_weight_;
  const float* norm_bias_;
  Linear expand_;   // mm.0: merge^2 * hidden -> merger_hidden
  Linear project_;  // mm.2: merger_hidden -> out_hidden
};

}  // namespace qvl
