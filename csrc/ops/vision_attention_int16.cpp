// The int16 attention's parts every ISA shares (attention_tiles.h): the rounding of a tile's queries
// and the scalar reference tile routine. Like the 16-bit GEMM's reference (kernels/float_int16.cpp) it
// is the scalar ISA's Fast path, which the avx2 and neon layers take back out (they attend in float),
// and the avx512 routine (vision_attention_int16_avx512.cpp)
// follows operation for operation: the same integer sums, and the float operations on them (exp2 by
// kExp2Coefficients, every FMA an explicit one, rounding to nearest even, 2^n scaling correctly
// rounded) in the same order, so the two agree to the last bit.
#include "kernels/strict_fp.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/int16_blocks.h"
#include "ops/attention_tiles.h"
#include "ops/op_table.h"

namespace qvl {

namespace {

constexpr int64_t Q = kAttentionQueryTile;
constexpr int64_t kKeyBlock = kInt16AttentionKeyBlock;
constexpr float kLog2E = 1.44269504088896341f;

int64_t dimension_blocks(int64_t head_dim) { return (head_dim + kInt16Block - 1) / kInt16Block; }

// Where dimension (or key) c of query lane i sits in a [depth / 2][Q][2] operand.
int64_t pair_index(int64_t i, int64_t c) { return (c / 2) * 2 * Q + 2 * i + c % 2; }

// 2^x for x <= 0: x = n + f, |f| <= 1/2, 2^f by kExp2Coefficients, times 2^n.
float exp2_nonpositive(float x) {
  x = std::max(x, kExp2Floor);
  const float n = std::nearbyint(x);
  const float f = x - n;
  float p = kExp2Coefficients[5];
  for (int k = 4; k >= 0; --k) p = std::fma(p, f, kExp2Coefficients[k]);
  return std::ldexp(p, static_cast<int>(n));
}

}  // namespace

void quantize_int16_queries(const Int16AttentionTile& tile, int64_t lanes, const Int16AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const float score_scale = kLog2E / std::sqrt(static_cast<float>(d));
  for (int64_t i = 0; i < lanes; ++i) {
    const float* query = tile.q + i * tile.row_stride;
    for (int64_t first = 0; first < d; first += kInt16Block) {
      const int64_t end = std::min<int64_t>(first + kInt16Block, d);
      ActivationScale scale{0.0f, 0.0f};
      if (i < tile.n_queries) {
        float max_abs = 0.0f;
        for (int64_t c = first; c < end; ++c) max_abs = std::max(max_abs, std::fabs(query[c]));
        scale = int16_scale(max_abs);
      }
      for (int64_t c = first; c < end; ++c) {
        scratch.queries[pair_index(i, c)] =
            i < tile.n_queries ? static_cast<int16_t>(std::lrint(query[c] * scale.inverse)) : int16_t{0};
      }
      scratch.query_scales[(first / kInt16Block) * Q + i] = scale.d * score_scale;
    }
  }
}

namespace scalar {
namespace {

// Query by query, key block by key block: scores from each dimension block's exact integer sum, the
// block's probabilities as levels against its max, the running max, sum and output rescaled, and the
// output's integer sums over the key block added in with value scale x block scale.
void attend_tile_int16(const Int16AttentionTile& tile, const Int16AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const int64_t blocks = dimension_blocks(d);
  quantize_int16_queries(tile, tile.n_queries, scratch);
  int32_t levels[kKeyBlock];
  for (int64_t i = 0; i < tile.n_queries; ++i) {
    float row_max = -std::numeric_limits<float>::infinity();
    float row_sum = 0.0f;
    for (int64_t c = 0; c < d; ++c) scratch.output_t[c * Q + i] = 0.0f;
    for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kKeyBlock) {
      const int64_t n_keys = std::min(kKeyBlock, tile.n_keys - first_key);
      const int16_t* keys = tile.keys + first_key * d;
      const float* key_scales = tile.key_scales + first_key * blocks;
      float* scores = scratch.scores_t + i;  // key j at scores[j * Q]
      for (int64_t j = 0; j < n_keys; ++j) {
        float score = 0.0f;
        for (int64_t b = 0; b < blocks; ++b) {
          int32_t dot = 0;
          for (int64_t c = b * kInt16Block; c < std::min<int64_t>((b + 1) * kInt16Block, d); ++c) {
            dot += int32_t{scratch.queries[pair_index(i, c)]} * keys[j * d + c];
          }
          score = std::fma(static_cast<float>(dot), key_scales[j * blocks + b] * scratch.query_scales[b * Q + i], score);
        }
        scores[j * Q] = score;
      }
      float block_max = scores[0];
      for (int64_t j = 1; j < n_keys; ++j) block_max = std::max(block_max, scores[j * Q]);
      int32_t block_sum = 0;
      for (int64_t j = 0; j < n_keys; ++j) {
        levels[j] = static_cast<int32_t>(
            std::lrint(exp2_nonpositive(scores[j * Q] - block_max) * static_cast<float>(kInt16MaxLevel)));
        block_sum += levels[j];
      }
      const float new_max = std::max(row_max, block_max);
      const float correction = exp2_nonpositive(row_max - new_max);
      const float block_scale = exp2_nonpositive(block_max - new_max);
      row_max = new_max;
      row_sum = std::fma(static_cast<float>(block_sum), block_scale, row_sum * correction);
      const int16_t* values_t = tile.values_t + first_key * d;
      const float* value_scales = tile.value_scales + first_key / kKeyBlock * d;
      for (int64_t c = 0; c < d; ++c) {
        int32_t dot = 0;
        for (int64_t j = 0; j < n_keys; ++j) dot += levels[j] * values_t[c * kKeyBlock + j];
        float& out = scratch.output_t[c * Q + i];
        out = std::fma(static_cast<float>(dot), value_scales[c] * block_scale, out * correction);
      }
    }
    const float inverse_sum = 1.0f / row_sum;
    for (int64_t c = 0; c < d; ++c) tile.out[i * tile.row_stride + c] = scratch.output_t[c * Q + i] * inverse_sum;
  }
}

}  // namespace

void add_int16_vision_attention(IsaOps& table) { table.vision_tile_int16 = attend_tile_int16; }
void keep_float_vision_attention(IsaOps& table) { table.vision_tile_int16 = nullptr; }

}  // namespace scalar
}  // namespace qvl
