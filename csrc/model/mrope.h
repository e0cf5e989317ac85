// Multimodal rotary position embedding (M-RoPE) of the Qwen2-VL decoder.
// Every position is a (temporal, height, width) triple; the head's rotary frequency pairs are split
// into three consecutive sections, each turned by one of the three coordinates. Text tokens carry the
// same value in all three, which makes M-RoPE equal to ordinary RoPE there.
#pragma once
#include <cstdint>
#include <vector>

namespace qvl {

class MRope {
 public:
  MRope(int64_t head_dim, double theta, const int sections[3]);

  // Rotates n_heads heads of head_dim values in place (NeoX layout: pairs (d, d + head_dim/2)).
  // position is the token's (t, h, w) triple.
  void apply(float* heads, int64_t n_heads, const int32_t position[3]) const;

 private:
  int64_t head_dim_;
  std::vector<float> inv_freq_;       // head_dim / 2 frequencies
  std::vector<uint8_t> coordinate_;   // which of t / h / w turns frequency j
};

}  // namespace qvl
