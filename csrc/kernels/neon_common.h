// Helpers shared by the NEON kernel files (include only from *_neon.cpp, built with
// -march=armv8.2-a+dotprod+fp16).
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/tile_loop.h"

namespace qvl::neon {

inline float fp16(uint16_t bits) {
  __fp16 value;
  std::memcpy(&value, &bits, sizeof(value));
  return static_cast<float>(value);
}

// Signed dot product of 32 levels with 32 activation levels, as 4 int32 lanes.
inline int32x4_t dot32(int8x16_t w_first, int8x16_t w_second, const int8_t* a) {
  return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w_first, vld1q_s8(a)), w_second, vld1q_s8(a + 16));
}

// Bytes = 16 where bit i of the 16-bit mask is set (byte i), else 0.
inline uint8x16_t bits_to_16s(uint8_t low_byte, uint8_t high_byte) {
  const uint8x16_t bit_of_byte = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  uint8x16_t spread = vcombine_u8(vdup_n_u8(low_byte), vdup_n_u8(high_byte));
  return vandq_u8(vtstq_u8(spread, bit_of_byte), vdupq_n_u8(16));
}

template <int R, int C>
inline void store_sums(const float32x4_t (&acc)[R][C], float* out, size_t out_stride) {
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) out[c * out_stride + r] = vaddvq_f32(acc[r][c]);
  }
}

template <int R, int C>
inline void zero(float32x4_t (&acc)[R][C]) {
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = vdupq_n_f32(0.0f);
  }
}

}  // namespace qvl::neon
