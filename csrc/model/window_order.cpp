#include "model/window_order.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace qvl {

WindowOrder window_order(const std::vector<GridThw>& grids, int64_t merge, int64_t window) {
  if (merge <= 0 || window <= 0) throw std::invalid_argument("window_order: merge and window must be positive");
  WindowOrder order;
  order.window_bounds.push_back(0);
  const int64_t patches_per_token = merge * merge;
  int64_t first_token = 0;  // of the current frame
  for (const GridThw& grid : grids) {
    const int64_t rows = grid.h / merge, cols = grid.w / merge;
    for (int64_t frame = 0; frame < grid.t; ++frame) {
      for (int64_t top = 0; top < rows; top += window) {
        for (int64_t left = 0; left < cols; left += window) {
          const int64_t bottom = std::min(rows, top + window), right = std::min(cols, left + window);
          for (int64_t r = top; r < bottom; ++r) {
            for (int64_t c = left; c < right; ++c) order.token_order.push_back(first_token + r * cols + c);
          }
          order.window_bounds.push_back(order.window_bounds.back() + (bottom - top) * (right - left) * patches_per_token);
        }
      }
      first_token += rows * cols;
    }
  }
  return order;
}

void gather_units(const std::vector<int64_t>& token_order, const float* in, int64_t unit_floats, float* out) {
  const size_t bytes = static_cast<size_t>(unit_floats) * sizeof(float);
  for (size_t j = 0; j < token_order.size(); ++j) std::memcpy(out + j * unit_floats, in + token_order[j] * unit_floats, bytes);
}

void scatter_units(const std::vector<int64_t>& token_order, const float* in, int64_t unit_floats, float* out) {
  const size_t bytes = static_cast<size_t>(unit_floats) * sizeof(float);
  for (size_t j = 0; j < token_order.size(); ++j) std::memcpy(out + token_order[j] * unit_floats, in + j * unit_floats, bytes);
}

}  // namespace qvl
