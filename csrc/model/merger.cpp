#include "model/merger.h"

#include <vector>

#include "backend/backend.h"

namespace qvl {

PatchMerger::PatchMerger(const GgufFile& file, const MergerSpec& spec, int64_t hidden, int64_t merge,
                         int64_t merger_hidden, int64_t out_hidden)
    : hidden_(hidden),
      merge_(merge),
      norm_after_merge_(spec.norm_after_merge),
      norm_(Norm::load(file, spec.norm_name, spec.norm, spec.norm_after_merge ? merge * merge * hidden : hidden,
                       kNormEps)),
      expand_(Linear::load(file, spec.fc1_name, merger_hidden, merge * merge * hidden)),
      project_(Linear::load(file, spec.fc2_name, out_hidden, merger_hidden)) {}

void PatchMerger::forward(const float* patches, int64_t n_patches, float* out, Precision precision,
                          ThreadPool& pool) const {
  const int64_t n_tokens = n_patches / patches_per_token();
  // Patches [n_patches, hidden] are, read row-major, already the windows' concatenations
  // [n_tokens, merge^2 * hidden]: consecutive patches form a window. So normalising each patch or each
  // window is the same buffer cut into rows of a different width.
  std::vector<float> windows(static_cast<size_t>(n_patches * hidden_));
  norm_.forward(patches, norm_after_merge_ ? n_tokens : n_patches, windows.data(), pool);
  const int64_t width = expand_.weight.rows;
  std::vector<float> expanded(static_cast<size_t>(n_tokens * width));
  expand_.forward(windows.data(), n_tokens, expanded.data(), precision, pool);
  parallel_rows(pool, n_tokens, [&](int64_t first, int64_t end) {
    gelu_in_place(expanded.data() + first * width, (end - first) * width);
  });
  project_.forward(expanded.data(), n_tokens, out, precision, pool);
}

}  // namespace qvl
