// A patch merger: each merge x merge window of consecutive patches concatenated into one row, then
// fc1 -> exact GELU -> fc2, giving one language-model embedding per window. The norm comes first and
// works on each patch (Qwen2-VL, Qwen2.5-VL, Qwen3-VL's final merger: the reference's ln_q /
// norm before the shuffle) or on the concatenated window (Qwen3-VL's deepstack mergers), as the
// MergerSpec says, with its kind (LayerNorm or RMSNorm) and its tensor names.
#pragma once
#include <cstdint>

#include "common/thread_pool.h"
#include "kernels/kernels.h"
#include "gguf/gguf_file.h"
#include "model/model_spec.h"
#include "model/vision_weights.h"

namespace qvl {

class PatchMerger {
 public:
  PatchMerger(const GgufFile& file, const MergerSpec& spec, int64_t hidden, int64_t merge, int64_t merger_hidden,
              int64_t out_hidden);

  int64_t patches_per_token() const { return merge_ * merge_; }
  int64_t out_width() const { return project_.weight.rows; }

  // patches: n_patches rows of `hidden` floats, windows laid out as patch_positions() gives them
  // (n_patches a multiple of patches_per_token()). out: n_patches / patches_per_token() rows of out_width().
  void forward(const float* patches, int64_t n_patches, float* out, Precision precision, ThreadPool& pool) const;

 private:
  static constexpr float kNormEps = 1e-6f;  // fixed in the reference, not a config value

  int64_t hidden_;
  int64_t merge_;
  bool norm_after_merge_;
  Norm norm_;
  Linear expand_;   // fc1: merge^2 * hidden -> merger_hidden
  Linear project_;  // fc2: merger_hidden -> out_hidden
};

}  // namespace qvl
