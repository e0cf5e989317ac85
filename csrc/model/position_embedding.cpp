#include "model/position_embedding.h"

#include <algorithm>
#include <stdexcept>

namespace qvl {

PositionGrid::PositionGrid(const float* table, int64_t side, int64_t width) : table_(table), side_(side), width_(width) {
  if (table == nullptr || side <= 0 || width <= 0) throw std::invalid_argument("PositionGrid needs a table");
}

// torch.linspace(0, side - 1, n) in float32: start + step * i for the first half, end - step * (n - 1 - i)
// for the second; the sample's floor and the next grid line (clamped), and the weight of the latter.
std::vector<PositionGrid::Sample> PositionGrid::samples(int64_t n) const {
  const float end = static_cast<float>(side_ - 1);
  const float step = n > 1 ? end / static_cast<float>(n - 1) : 0.0f;
  std::vector<Sample> result(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float at = i < n / 2 ? step * static_cast<float>(i) : end - step * static_cast<float>(n - 1 - i);
    const int64_t low = static_cast<int64_t>(at);
    result[i] = {low, std::min(low + 1, side_ - 1), at - static_cast<float>(low)};
  }
  return result;
}

void PositionGrid::add_to(const std::vector<GridThw>& grids, int64_t merge, float* x) const {
  int64_t patch = 0;
  for (const GridThw& grid : grids) {
    const std::vector<Sample> rows = samples(grid.h), cols = samples(grid.w);
    const std::vector<PatchPosition> positions = patch_positions({{1, grid.h, grid.w}}, merge);
    for (int64_t frame = 0; frame < grid.t; ++frame) {
      for (const PatchPosition& at : positions) {
        const Sample& r = rows[at.row];
        const Sample& c = cols[at.col];
        // The four corners' weights, products in float32 as the reference forms them.
        const float w00 = (1.0f - r.weight_high) * (1.0f - c.weight_high), w01 = (1.0f - r.weight_high) * c.weight_high;
        const float w10 = r.weight_high * (1.0f - c.weight_high), w11 = r.weight_high * c.weight_high;
        const float* e00 = table_ + (r.low * side_ + c.low) * width_;
        const float* e01 = table_ + (r.low * side_ + c.high) * width_;
        const float* e10 = table_ + (r.high * side_ + c.low) * width_;
        const float* e11 = table_ + (r.high * side_ + c.high) * width_;
        float* out = x + patch * width_;
        for (int64_t k = 0; k < width_; ++k) out[k] += ((e00[k] * w00 + e01[k] * w01) + e10[k] * w10) + e11[k] * w11;
        ++patch;
      }
    }
  }
}

}  // namespace qvl
