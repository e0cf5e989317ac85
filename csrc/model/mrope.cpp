#include "model/mrope.h"

#include <cmath>
#include <stdexcept>

#include "backend/backend.h"

namespace qvl {

MRope::MRope(int64_t head_dim, double theta, const int sections[3]) : head_dim_(head_dim) {
  const int64_t half = head_dim / 2;
  if (head_dim <= 0 || head_dim > 1024) throw std::invalid_argument("M-RoPE head_dim must be in 1..1024");
  if (head_dim % 2 != 0 || sections[0] + sections[1] + sections[2] != half) {
    throw std::invalid_argument("M-RoPE sections must add up to head_dim / 2");
  }
  inv_freq_.resize(half);
  coordinate_.resize(half);
  for (int64_t j = 0; j < half; ++j) {
    // The reference computes the frequencies in float32; rounding them the same way keeps the angles equal.
    float exponent = static_cast<float>(2 * j) / static_cast<float>(head_dim);
    inv_freq_[j] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(exponent)));
    coordinate_[j] = j < sections[0] ? 0 : (j < sections[0] + sections[1] ? 1 : 2);
  }
}

void MRope::apply(float* heads, int64_t n_heads, const int32_t position[3]) const {
  const int64_t half = head_dim_ / 2;
  float cos_table[512], sin_table[512];
  for (int64_t j = 0; j < half; ++j) {
    float angle = static_cast<float>(position[coordinate_[j]]) * inv_freq_[j];
    cos_table[j] = std::cos(angle);
    sin_table[j] = std::sin(angle);
  }
  apply_rope(heads, n_heads, head_dim_, cos_table, sin_table);
}

}  // namespace qvl
