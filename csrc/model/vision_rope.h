// The ViT's 2-D rotary position embedding. Each head's dimensions form head_dim/2 rotation pairs
// (c, c + head_dim/2), the "rotate_half" layout. The first half of the pairs turns with the patch's row,
// the second half with its column, both with the frequencies theta^(-4i/head_dim), i < head_dim/4.
#pragma once
#include <cstdint>
#include <vector>

namespace qvl {

// One image (t = 1) or video (t = number of 2-frame groups) as the preprocessor cut it, in patches.
struct GridThw {
  int64_t t = 0;
  int64_t h = 0;
  int64_t w = 0;
};

struct PatchPosition {
  int32_t row = 0;
  int32_t col = 0;
};

// The (row, col) of every patch in the order the preprocessor lays them out: grids one after another,
// each of a grid's t frames in turn, a frame as merge x merge windows in row-major order, and the
// patches of a window row-major inside it (so the merger can take `merge * merge` consecutive patches).
std::vector<PatchPosition> patch_positions(const std::vector<GridThw>& grids, int64_t merge);

class VisionRope {
 public:
  // head_dim must be a multiple of 4.
  VisionRope(int64_t head_dim, const std::vector<PatchPosition>& positions, float theta = 10000.0f);

  // Rotates, in place, the n_heads head vectors of patch `patch` stored one after another at x.
  void apply(float* x, int64_t patch, int64_t n_heads) const;

 private:
  int64_t head_dim_;
  std::vector<float> cos_;  // [patch][head_dim / 2]
  std::vector<float> sin_;
};

}  // namespace qvl
