// Scale searches for the K-quant encoders: given a sub-block of values, find the scale (and minimum)
// whose rounded levels reconstruct the values with the least weighted squared error. Our own take on
// the idea of ggml's make_qkx / make_qx reference quantizers: try a sweep of candidate scales, round,
// then solve the small least-squares problem for the best scale (and offset) for those levels.
#pragma once
#include <cstdint>

namespace qvl {

// Fits x ~= scale * q - min with q in [0, top], scale >= 0, min >= 0 (the minimum is an offset below
// zero, as Q4_K / Q5_K store it). Returns scale and writes min.
float fit_scale_min(const float* x, const float* weight, int n, int top, float* min);

// Fits x ~= scale * q with q in [-half_range, half_range - 1] (scale may be negative, which lets the
// asymmetric level range reach the extreme value). Returns scale.
float fit_symmetric_scale(const float* x, const float* weight, int n, int half_range);

// Importance weights for the fits: larger values matter more, none matters zero.
void fit_weights(const float* x, int n, float* weight);

// Nearest level for x ~= scale * q - min, clamped to [0, top]; 0 when scale is 0.
int nearest_level(float x, float scale, float min, int top);

// Packs 8 6-bit scales and 8 6-bit mins into Q4_K / Q5_K's 12 bytes (inverse of unpack_scale_min_k).
void pack_scales_mins_k(const uint8_t* scales, const uint8_t* mins, uint8_t* packed);

// Rounds non-negative sub-block values to 6-bit multiples of a shared fp16 step; returns the step as
// stored (fp16 bits) and writes the 6-bit multiples.
uint16_t quantize_sub_scales(const float* values, int n, uint8_t* levels);

// The scales of one Q4_K / Q5_K super-block (8 sub-blocks of 32 values, levels q in [0, top]): a
// scale and a minimum fitted per sub-block, stored as 6-bit multiples of the fp16 steps d and dmin.
struct SuperBlockScales {
  uint16_t d, dmin;        // fp16 bits
  uint8_t scale[8], min[8];  // 6-bit multiples per sub-block
};
// Fits them for the 256 values at x and packs them into `packed` (12 bytes).
SuperBlockScales fit_super_block_scales(const float* x, int top, uint8_t* packed);

}  // namespace qvl
