// Block layouts of the GGUF quantized types (byte-compatible with ggml) and of the 8-bit activation
// blocks the Fast integer dot products consume. Every layout sits next to a static_assert of its size,
// so a padding mistake fails the build instead of silently misreading a model file.
#pragma once
#include <cstdint>
#include <type_traits>

namespace qvl {

constexpr int kBlock32 = 32;    // values per block of the legacy types (Q4_0 ... Q8_0)
constexpr int kBlockK = 256;    // values per super-block of the K-quants
constexpr int kScalesK = 12;    // bytes of packed 6-bit scales and mins in Q4_K / Q5_K

// x = d * q, q = stored int8.
struct BlockQ8_0 {
  uint16_t d;  // fp16
  int8_t qs[kBlock32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");

// x = d * (q - 8); value i < 16 is the low nibble of qs[i], value i >= 16 the high nibble of qs[i - 16].
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kBlock32 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must be 18 bytes");

// x = d * q + m, nibbles as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kBlock32 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block must be 20 bytes");

// x = d * (q - 16); q = nibble as in Q4_0 plus bit i of the little-endian qh as bit 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kBlock32 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block must be 22 bytes");

// x = d * q + m, q as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kBlock32 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block must be 24 bytes");

// 8 sub-blocks of 32: x = d * sc[s] * q - dmin * mn[s], q in [0, 15]; sc and mn are 6-bit, packed in
// `scales` (see unpack_scales_mins_k). Sub-blocks 2j and 2j+1 share qs[32j .. 32j+31]: low, high nibble.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kScalesK];
  uint8_t qs[kBlockK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block must be 144 bytes");

// As Q4_K with q in [0, 31]: bit s of qh[l] is bit 4 of value l of sub-block s.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kScalesK];
  uint8_t qh[kBlockK / 8];
  uint8_t qs[kBlockK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block must be 176 bytes");

// 16 sub-blocks of 16: x = d * scales[s] * (q - 32), q in [0, 63]. For value i = 128h + j (j < 128):
// low 4 bits from ql[64h + j % 64] (nibble j / 64), high 2 bits from qh[32h + j % 32] (bits 2 * (j / 32)).
struct BlockQ6_K {
  uint8_t ql[kBlockK / 2];
  uint8_t qh[kBlockK / 4];
  int8_t scales[kBlockK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block must be 210 bytes");

// Activation block for the 32-value types: x ~= d * q. `sum` = d * sum(q), the term a weight's
// offset (Q4_1 / Q5_1 min) multiplies. Internal to the kernels, so d is kept as float.
struct ActQ8_32 {
  float d;
  float sum;
  int8_t qs[kBlock32];
};
static_assert(sizeof(ActQ8_32) == 40, "ActQ8_32 block must be 40 bytes");

// The same for the 16-value sub-blocks of Q6_K in the matrix-matrix path (panel_avx2.h): a scale per
// 16 values, sum = d * sum(q) over them.
struct ActQ8_16 {
  float d;
  float sum;
  int8_t qs[16];
};
static_assert(sizeof(ActQ8_16) == 24, "ActQ8_16 block must be 24 bytes");

// The activation block a matrix-matrix panel block of B values (32, or 16 for Q6_K) meets.
template <int B>
using ActBlockOf = std::conditional_t<B == 32, ActQ8_32, ActQ8_16>;

// Activation super-block for the K-quants' row-dot kernels: x ~= d * multipliers[s] * q in 32-value
// sub-block s (act_quant_scale.h: each sub-block's levels span its own range, and the kernels multiply
// the weights' integer sub-block scales by the multipliers, staying in integers); bsums[g] = sum of
// qs[16g .. 16g+15], the term a K-quant's per-sub-block minimum (or Q6_K's offset of 32) multiplies.
struct ActQ8_K {
  float d;
  int16_t bsums[kBlockK / 16];
  int8_t qs[kBlockK];
  uint8_t multipliers[kBlockK / 32];  // 1 .. kSubBlockMultipliers
};
static_assert(sizeof(ActQ8_K) == 300, "ActQ8_K block must be 300 bytes");

// Q4_K / Q5_K 6-bit scale and min of sub-block s (0..7) from the 12 packed bytes.
inline void unpack_scale_min_k(const uint8_t* packed, int s, uint8_t* scale, uint8_t* min) {
  if (s < 4) {
    *scale = packed[s] & 63;
    *min = packed[s + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((packed[s + 4] & 0x0F) | ((packed[s - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((packed[s + 4] >> 4) | ((packed[s] >> 6) << 4));
  }
}

// Sub-block s's float scale d * sc[s] and offset -dmin * mn[s] of a Q4_K / Q5_K super-block, both
// exact in float (an fp16 times a 6-bit integer): what every ISA's panel decoder stores.
inline void sub_block_scales_offsets_k(const uint8_t* packed, float d, float dmin, float* scales, float* offsets) {
  for (int s = 0; s < 8; ++s) {
    uint8_t scale, min;
    unpack_scale_min_k(packed, s, &scale, &min);
    scales[s] = d * scale;
    offsets[s] = -(dmin * min);
  }
}

}  // namespace qvl
