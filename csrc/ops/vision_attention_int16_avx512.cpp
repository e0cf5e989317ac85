// The int16 attention tile routine (Precision::Fast, avx512 only; the format is attention_tiles.h's):
// the float routine's query tile and online softmax, with both products on VNNI's vpdpwssd (32 s16 x
// s16 products into 16 int32 lanes per instruction, twice the multiplies of an FMA, from operands half
// the bytes). Queries stay along the vector lanes: each 32-bit lane holds 2 consecutive dimensions
// (scores) or 2 consecutive keys (output) of one query, and the broadcast operand is 2 values of one key
// (scores) or of one value channel (output). Operation for operation the scalar reference
// (vision_attention_int16.cpp), so the two agree to the last bit.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/int16_blocks.h"
#include "ops/attention_tiles.h"
#include "ops/op_table.h"
#include "ops/integer_attention_avx512.h"

namespace qvl::avx512 {

namespace {

constexpr int64_t Q = kAttentionQueryTile;
constexpr int64_t kKeyBlock = kInt16AttentionKeyBlock;
constexpr int64_t kLanes = kQueryLanes;
constexpr int kRows = 8;         // keys (score product) or channels (output product) per register tile
constexpr int kTailRows = 4;     // a head_dim that is 4 mod 8 ends with one 4-channel step
constexpr int64_t kPairElements = Q * 2;  // one [kAttentionQueryTile][2] layer of an int16 operand
static_assert(kKeyBlock % kRows == 0, "the key block must hold whole 8-key steps");

// 2^x for x <= 0, as the reference's exp2_nonpositive: x = n + f, |f| <= 1/2, 2^f by
// kExp2Coefficients, times 2^n by vscalefps.
inline __m512 exp2_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(kExp2Floor));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(kExp2Coefficients[5]);
#pragma GCC unroll 5
  for (int k = 4; k >= 0; --k) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Coefficients[k]));
  return _mm512_scalef_ps(p, n);
}

// scores_t[r][lanes] = sum over dimension blocks b of (integer dot of block b) * key scale * query
// scale, in log2 units, for the 8 keys from `keys` on: each block's sum to float on its own (32
// products of levels within +-8191 fit an int32; more might not).
template <int Vectors>
void score_product(const int16_t* keys, const float* key_scales, const Int16AttentionScratch& scratch, int64_t d,
                   float* scores_t) {
  const int64_t blocks = (d + kInt16Block - 1) / kInt16Block;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t first = b * kInt16Block;
    __m512i acc[kRows][Vectors];
    integer_product<DpwssdMadd>(keys + first, d, scratch.queries + first / 2 * kPairElements,
                                    (std::min<int64_t>(first + kInt16Block, d) - first) / 2, acc);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m512 key_scale = _mm512_set1_ps(key_scales[r * blocks + b]);
#pragma GCC unroll 3
      for (int v = 0; v < Vectors; ++v) {
        float* score = scores_t + r * Q + kLanes * v;
        const __m512 scale = _mm512_mul_ps(key_scale, _mm512_loadu_ps(scratch.query_scales + b * Q + kLanes * v));
        const __m512 before = b == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(score);
        _mm512_storeu_ps(score, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][v]), scale, before));
      }
    }
  }
}

// output_t[c + r][lanes] = output_t * correction + (integer dot of probabilities and values) * value
// scale * block_scale, for Rows channels from `values_t` (rows kKeyBlock elements apart).
template <int Rows, int Vectors>
void output_product(const int16_t* values_t, const float* value_scales, int64_t key_pairs,
                    const Int16AttentionScratch& scratch, float* output_t) {
  __m512i acc[Rows][Vectors];
  integer_product<DpwssdMadd>(values_t, kKeyBlock, scratch.probabilities, key_pairs, acc);
  accumulate_output(acc, value_scales, scratch, output_t);
}

template <int Vectors>
void output_products(const Int16AttentionTile& tile, const int16_t* values_t, const float* value_scales,
                     int64_t key_pairs, const Int16AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const int64_t full_channels = d / kRows * kRows;
  for (int64_t c = 0; c < full_channels; c += kRows) {
    output_product<kRows, Vectors>(values_t + c * kKeyBlock, value_scales + c, key_pairs, scratch,
                                   scratch.output_t + c * Q);
  }
  if (full_channels < d) {
    output_product<kTailRows, Vectors>(values_t + full_channels * kKeyBlock, value_scales + full_channels, key_pairs,
                                       scratch, scratch.output_t + full_channels * Q);
  }
}

// For 16 queries (lanes): this key block's probabilities against the block's own max, rounded to
// levels of 1 / kInt16MaxLevel and interleaved 2 keys per lane into `probabilities` (zero past n_keys
// up to the pair); then the running max and sum, block_scale = 2^(block max - new max) and correction
// = 2^(old max - new max), which output_product applies.
void softmax_update(const float* scores_t, int64_t n_keys, float* row_max, float* row_sum, float* correction,
                    float* block_scale, int16_t* probabilities) {
  __m512 block_max = _mm512_loadu_ps(scores_t);
  for (int64_t j = 1; j < n_keys; ++j) block_max = _mm512_max_ps(block_max, _mm512_loadu_ps(scores_t + j * Q));
  const __m512 max_level = _mm512_set1_ps(static_cast<float>(kInt16MaxLevel));
  __m512i block_sum = _mm512_setzero_si512();
  auto level = [&](int64_t j) {
    if (j >= n_keys) return _mm512_setzero_si512();
    const __m512 x = _mm512_sub_ps(_mm512_loadu_ps(scores_t + j * Q), block_max);
    const __m512i p = _mm512_cvtps_epi32(_mm512_mul_ps(exp2_nonpositive(x), max_level));  // nearest even
    block_sum = _mm512_add_epi32(block_sum, p);
    return p;
  };
  for (int64_t j = 0; j < n_keys; j += 2) {
    const __m512i low = level(j);  // 0..8191: the high half stays clear for the odd key
    const __m512i pair = _mm512_or_si512(low, _mm512_slli_epi32(level(j + 1), 16));
    _mm512_storeu_si512(probabilities + (j / 2) * kPairElements, pair);
  }
  const __m512 old_max = _mm512_loadu_ps(row_max);
  const __m512 new_max = _mm512_max_ps(old_max, block_max);
  const __m512 old_correction = exp2_nonpositive(_mm512_sub_ps(old_max, new_max));
  const __m512 new_block_scale = exp2_nonpositive(_mm512_sub_ps(block_max, new_max));
  _mm512_storeu_ps(row_max, new_max);
  _mm512_storeu_ps(correction, old_correction);
  _mm512_storeu_ps(block_scale, new_block_scale);
  _mm512_storeu_ps(row_sum, _mm512_fmadd_ps(_mm512_cvtepi32_ps(block_sum), new_block_scale,
                                            _mm512_mul_ps(_mm512_loadu_ps(row_sum), old_correction)));
}

template <int Vectors>
void attend_tile_lanes(const Int16AttentionTile& tile, const Int16AttentionScratch& scratch) {
  constexpr int64_t lanes = kLanes * Vectors;
  const int64_t d = tile.head_dim;
  const int64_t blocks = (d + kInt16Block - 1) / kInt16Block;
  quantize_int16_queries(tile, lanes, scratch);
  std::fill(scratch.output_t, scratch.output_t + d * Q, 0.0f);
  std::fill(scratch.row_max, scratch.row_max + lanes, -std::numeric_limits<float>::infinity());
  std::fill(scratch.row_sum, scratch.row_sum + lanes, 0.0f);
  for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kKeyBlock) {
    const int64_t n_keys = std::min(kKeyBlock, tile.n_keys - first_key);
    // keys past n_keys (zero padding up to the 8-key step) score 0 and are left out of the softmax
    for (int64_t j = 0; j < n_keys; j += kRows) {
      score_product<Vectors>(tile.keys + (first_key + j) * d, tile.key_scales + (first_key + j) * blocks, scratch, d,
                             scratch.scores_t + j * Q);
    }
    for (int64_t i = 0; i < lanes; i += kLanes) {
      softmax_update(scratch.scores_t + i, n_keys, scratch.row_max + i, scratch.row_sum + i, scratch.correction + i,
                     scratch.block_scale + i, scratch.probabilities + 2 * i);
    }
    output_products<Vectors>(tile, tile.values_t + first_key * d, tile.value_scales + first_key / kKeyBlock * d,
                             (n_keys + 1) / 2, scratch);
  }
  store_normalised_output(tile, scratch);
}

void attend_tile_int16(const Int16AttentionTile& tile, const Int16AttentionScratch& scratch) {
  with_query_vectors(tile.n_queries, [&](auto vectors) { attend_tile_lanes<decltype(vectors)::value>(tile, scratch); });
}

}  // namespace

void add_int16_vision_attention(IsaOps& table) { table.vision_tile_int16 = attend_tile_int16; }

}  // namespace qvl::avx512
