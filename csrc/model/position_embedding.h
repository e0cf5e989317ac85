// Qwen3-VL's learned position embedding: a side x side grid of vectors (48 x 48 in Qwen3-VL),
// bilinearly interpolated to each image's patch grid and added to the patch embeddings. As the
// reference computes it: the grid's rows and columns are sampled at linspace(0, side - 1, h) and
// linspace(0, side - 1, w) (in float32, torch's symmetric formula), each patch mixes its four
// neighbours, and a video's frames all take the same values. Patches come in the preprocessor's merge
// order (patch_positions()), which is the permutation the reference applies after interpolating.
#pragma once
#include <cstdint>
#include <vector>

#include "model/vision_rope.h"

namespace qvl {

class PositionGrid {
 public:
  // table: side * side rows of `width` floats, row-major over (grid row, grid column).
  PositionGrid(const float* table, int64_t side, int64_t width);

  // x[i] += the interpolated embedding of patch i, for the patches of `grids` in merge order.
  void add_to(const std::vector<GridThw>& grids, int64_t merge, float* x) const;

 private:
  struct Sample {  // where one patch row (or column) falls between two grid rows (columns)
    int64_t low, high;
    float weight_high;
  };
  std::vector<Sample> samples(int64_t n) const;

  const float* table_;
  int64_t side_;
  int64_t width_;
};

}  // namespace qvl
