// Multimodal rotary position embedding (M-RoPE) of the decoder.
// Every position is a (temporal, height, width) triple; each of the head's rotary frequency pairs turns
// with one of the three coordinates. Which one is the layout: Qwen2-VL gives t, h and w three
// consecutive sections, Qwen3-VL interleaves them (t, h, w, t, h, w, ...). Text tokens carry the same
// value in all three, which makes M-RoPE equal to ordinary RoPE there.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "model/model_spec.h"

namespace qvl {

class MRope {
 public:
  MRope(int64_t head_dim, double theta, const std::array<int, 3>& sections, MRopeLayout layout);

  // Rotates n_heads heads of head_dim values in place (NeoX layout: pairs (d, d + head_dim/2)).
  // position is the token's (t, h, w) triple.
  void apply(float* heads, int64_t n_heads, const int32_t position[3]) const;

  // Which coordinate (0 = t, 1 = h, 2 = w) turns frequency pair j.
  int coordinate(int64_t pair) const { return coordinate_[pair]; }

 private:
  int64_t head_dim_;
  std::vector<float> inv_freq_;       // head_dim / 2 frequencies
  std::vector<uint8_t> coordinate_;   // which of t / h / w turns frequency j
};

}  // namespace qvl
