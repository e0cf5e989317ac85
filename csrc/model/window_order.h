// Qwen2.5-VL's window attention layout. Each frame's merged tokens (merge x merge patches each) are cut
// into windows of window x window tokens from the top-left corner; the last row and column of windows
// are cut short by the frame's edge (the reference pads the grid up to whole windows and drops the
// padding). The patches are then reordered window by window -- frames in turn, windows row-major, the
// tokens of a window row-major, each token's merge x merge patches kept together -- so that every window
// is one contiguous attention segment and every frame still is one too.
#pragma once
#include <cstdint>
#include <vector>

#include "model/vision_rope.h"

namespace qvl {

struct WindowOrder {
  // token_order[j] = the merged token (in the preprocessor's order, over all grids) placed j-th.
  std::vector<int64_t> token_order;
  // Attention segments over the reordered patches: 0 = b0 < b1 < ... = number of patches
  // (the reference's cu_window_seqlens without its repeats).
  std::vector<int64_t> window_bounds;
};

// window: the window's side in merged tokens (window_size pixels / patch size / merge).
WindowOrder window_order(const std::vector<GridThw>& grids, int64_t merge, int64_t window);

// Moves whole tokens (unit_floats floats each: a token's patches, or one merged row):
// out[j] = in[token_order[j]].
void gather_units(const std::vector<int64_t>& token_order, const float* in, int64_t unit_floats, float* out);
// The inverse: out[token_order[j]] = in[j].
void scatter_units(const std::vector<int64_t>& token_order, const float* in, int64_t unit_floats, float* out);

}  // namespace qvl
