#include "model/merger.h"

#include <vector>

#include "backend/backend.h"

namespace qvl {

PatchMerger::PatchMerger(const GgufFile& file, int64_t hidden, int64_t merge, int64_t merger_hidden,
                         int64_t out_hidden)
    : hidden_(hidden),
      merge_(merge),
      norm_weight_(f32_vector(file, "v.post_ln.weight", hidden)),
      norm_bias_(f32_vector(file, "v.post_ln.bias", hidden)),
      expand_(Linear::load(file, "mm.0", merger_hidden, merge * merge * hidden)),
      project_(Linear::load(file, "mm.2", out_hidden, merger_hidden)) {}

void PatchMerger::forward(const float* patches, int64_t n_patches, float* out, Precision precision,
                          ThreadPool& pool) const {
  const int64_t n_tokens = n_patches / patches_per_token();
  // Normalised patches [n_patches, hidden] are, read row-major, already the windows' concatenations
  // [n_tokens, merge^2 * hidden]: consecutive patches form a window.
  std::vector<float> windows(static_cast<size_t>(n_patches * hidden_));
  parallel_rows(pool, n_patches, [&](int64_t first, int64_t end) {
    for (int64_t i = first; i < end; ++i) {
      layer_norm(patches + i * hidden_, norm_weight_, norm_bias_, hidden_, kNormEps, windows.data() + i * hidden_);
    }
  });
  const int64_t width = expand_.weight.rows;
  std::vector<float> expanded(static_cast<size_t>(n_tokens * width));
  expand_.forward(windows.data(), n_tokens, expanded.data(), precision, pool);
  parallel_rows(pool, n_tokens, [&](int64_t first, int64_t end) {
    gelu_in_place(expanded.data() + first * width, (end - first) * width);
  });
  project_.forward(expanded.data(), n_tokens, out, precision, pool);
}

}  // namespace qvl
