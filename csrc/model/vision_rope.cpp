#include "model/vision_rope.h"

#include <cmath>
#include <stdexcept>

#include "backend/backend.h"

namespace qvl {

std::vector<PatchPosition> patch_positions(const std::vector<GridThw>& grids, int64_t merge) {
  std::vector<PatchPosition> positions;
  for (const GridThw& grid : grids) {
    for (int64_t frame = 0; frame < grid.t; ++frame) {
      for (int64_t window_row = 0; window_row < grid.h / merge; ++window_row) {
        for (int64_t window_col = 0; window_col < grid.w / merge; ++window_col) {
          for (int64_t r = 0; r < merge; ++r) {
            for (int64_t c = 0; c < merge; ++c) {
              positions.push_back({static_cast<int32_t>(window_row * merge + r),
                                   static_cast<int32_t>(window_col * merge + c)});
            }
          }
        }
      }
    }
  }
  return positions;
}

VisionRope::VisionRope(int64_t head_dim, const std::vector<PatchPosition>& positions, float theta)
    : head_dim_(head_dim) {
  if (head_dim <= 0 || head_dim % 4 != 0) {
    throw std::invalid_argument("vision rope: head_dim " + std::to_string(head_dim) + " is not a multiple of 4");
  }
  const int64_t n_pairs = head_dim / 2;
  const int64_t n_freqs = head_dim / 4;
  // Computed in float like the reference (inv_freq = 1 / theta^(2i / (head_dim/2)), angle = pos * inv_freq),
  // so the angles agree to the last bit wherever powf does.
  std::vector<float> inv_freq(n_freqs);
  for (int64_t i = 0; i < n_freqs; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(n_pairs);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
  cos_.resize(positions.size() * n_pairs);
  sin_.resize(positions.size() * n_pairs);
  for (size_t p = 0; p < positions.size(); ++p) {
    for (int64_t j = 0; j < n_pairs; ++j) {
      bool by_row = j < n_freqs;
      float position = static_cast<float>(by_row ? positions[p].row : positions[p].col);
      float angle = position * inv_freq[by_row ? j : j - n_freqs];
      cos_[p * n_pairs + j] = std::cos(angle);
      sin_[p * n_pairs + j] = std::sin(angle);
    }
  }
}

void VisionRope::apply(float* x, int64_t patch, int64_t n_heads) const {
  const int64_t n_pairs = head_dim_ / 2;
  apply_rope(x, n_heads, head_dim_, cos_.data() + patch * n_pairs, sin_.data() + patch * n_pairs);
}

}  // namespace qvl
