// The int8 attention tile routine (Precision::Int8, avx512 only): the float routine's blocks, lanes
// and online softmax, with both products on VNNI's vpdpbusd (64 u8 x s8 products into 16 int32 lanes
// per instruction, 4x the multiplies of an FMA). Queries stay along the vector lanes: each 32-bit lane
// holds 4 consecutive dimensions (scores) or 4 consecutive keys (output) of one query, and the
// broadcast operand is 4 bytes of one key (scores) or of one value channel (output).
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/attention_tiles.h"
#include "ops/integer_attention_avx512.h"
#include "ops/op_table.h"
#include "simd/vec_avx512.h"
#include "simd/vec_math.h"

namespace qvl::avx512 {

namespace {

constexpr int64_t Q = kAttentionQueryTile;
constexpr int64_t kLanes = 16;
constexpr int kRows = 8;         // keys (score product) or channels (output product) per register tile
constexpr int kTailRows = 4;     // a head_dim that is 4 mod 8 ends with one 4-channel step
constexpr int kMaxVectors = 3;   // 3 x 16 = 48 queries: 24 accumulators + 3 loads + a broadcast
constexpr float kLog2E = 1.44269504088896341f;
constexpr int64_t kQuadBytes = Q * 4;  // one [kAttentionQueryTile][4] layer of a byte operand
static_assert(Q == kLanes * kMaxVectors, "a query tile is three vectors of query lanes");
static_assert(kAttentionKeyTile % kRows == 0, "the key tile must hold whole 8-key steps");

// scores_t[j + r][lanes] = (dot(q + 128, k) - 128 sum(k)) * key scale * query scale, in log2 units, for
// the 8 keys from `keys` on.
template <int Vectors>
void score_product(const int8_t* keys, const float* key_scales, const int32_t* key_offsets,
                   const Int8AttentionScratch& scratch, int64_t d, float* scores_t) {
  integer_product<DpbusdMadd, kRows, Vectors>(keys, d, scratch.queries, d / 4, reinterpret_cast<int32_t*>(scores_t));
  for (int r = 0; r < kRows; ++r) {
    const __m512i offset = _mm512_set1_epi32(key_offsets[r]);
    const __m512 key_scale = _mm512_set1_ps(key_scales[r]);
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) {
      float* score = scores_t + r * Q + kLanes * v;
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(score), offset));
      const __m512 query_scale = _mm512_loadu_ps(scratch.query_scales + kLanes * v);
      _mm512_storeu_ps(score, _mm512_mul_ps(_mm512_mul_ps(dot, key_scale), query_scale));
    }
  }
}

// output_t[c + r][lanes] = output_t * correction + block_scale * value scale * sum_j p_u8[j] v_s8[j][c + r],
// for Rows channels from `values_t` (rows kAttentionKeyTile bytes apart).
template <int Rows, int Vectors>
void output_product(const int8_t* values_t, const float* value_scales, int64_t key_quads,
                    const Int8AttentionScratch& scratch, float* output_t) {
  integer_product<DpbusdMadd, Rows, Vectors>(values_t, kAttentionKeyTile, scratch.probabilities, key_quads,
                                             scratch.sums);
  for (int r = 0; r < Rows; ++r) {
    const __m512 value_scale = _mm512_set1_ps(value_scales[r]);
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) {
      float* out = output_t + r * Q + kLanes * v;
      const __m512 sums = _mm512_cvtepi32_ps(_mm512_loadu_si512(scratch.sums + r * Q + kLanes * v));
      const __m512 rescaled = _mm512_mul_ps(_mm512_loadu_ps(out), _mm512_loadu_ps(scratch.correction + kLanes * v));
      const __m512 scale = _mm512_mul_ps(value_scale, _mm512_loadu_ps(scratch.block_scale + kLanes * v));
      _mm512_storeu_ps(out, _mm512_fmadd_ps(sums, scale, rescaled));
    }
  }
}

template <int Vectors>
void output_products(const Int8AttentionTile& tile, const int8_t* values_t, int64_t key_quads,
                     const Int8AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const int64_t full_channels = d / kRows * kRows;
  for (int64_t c = 0; c < full_channels; c += kRows) {
    output_product<kRows, Vectors>(values_t + c * kAttentionKeyTile, tile.value_scales + c, key_quads, scratch,
                                   scratch.output_t + c * Q);
  }
  if (full_channels < d) {
    output_product<kTailRows, Vectors>(values_t + full_channels * kAttentionKeyTile, tile.value_scales + full_channels,
                                       key_quads, scratch, scratch.output_t + full_channels * Q);
  }
}

// 255 * 2^x for x <= 0 (0 below 2^-126): x = n + f with |f| <= 1/2, 2^f by a cubic fitted for relative
// error (7.5e-5, i.e. 0.02 of a probability step at 255; the steps themselves are 1/255), times 2^n by
// vscalefps. Cheaper than simd::exp: the probabilities are rounded to 8 bits right after.
inline __m512 probability_255(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(255.0f * 0.055171662592380044f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(255.0f * 0.242611155162495f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(255.0f * 0.6932609895686705f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(255.0f * 0.9999280716319953f));
  return _mm512_scalef_ps(p, n);
}

// For 16 queries (lanes): the probabilities of this block's n_keys scores against the block's own max,
// rounded to u8 and interleaved 4 keys per lane into `probabilities` (zeros past n_keys up to the quad).
// Rounding against the block's max, not the running one, keeps 8 bits for every block: against the
// running max a diffuse row loses most of its weights to 0 (random q, k over 3552 keys: 13% RMS error
// of the output, 0.8% per block). Then the running max and sum: block_scale = 2^(block max - new max)
// takes the block's integer sums to the running scale and correction = 2^(old max - new max) rescales
// what came before (output_product applies both to the output).
void softmax_update(const float* scores_t, int64_t n_keys, float* row_max, float* row_sum, float* correction,
                    float* block_scale, uint8_t* probabilities) {
  __m512 block_max = _mm512_loadu_ps(scores_t);
  for (int64_t j = 1; j < n_keys; ++j) block_max = _mm512_max_ps(block_max, _mm512_loadu_ps(scores_t + j * Q));
  __m512i block_sum = _mm512_setzero_si512();
  auto rounded_probability = [&](int64_t j) {
    if (j >= n_keys) return _mm512_setzero_si512();
    const __m512 x = _mm512_sub_ps(_mm512_loadu_ps(scores_t + j * Q), block_max);
    const __m512i p = _mm512_cvtps_epi32(probability_255(x));  // rounds to nearest: 0..255
    block_sum = _mm512_add_epi32(block_sum, p);
    return p;
  };
  for (int64_t j = 0; j < n_keys; j += 4) {
    const __m512i low = _mm512_or_si512(rounded_probability(j), _mm512_slli_epi32(rounded_probability(j + 1), 8));
    const __m512i high =
        _mm512_or_si512(_mm512_slli_epi32(rounded_probability(j + 2), 16), _mm512_slli_epi32(rounded_probability(j + 3), 24));
    _mm512_storeu_si512(probabilities + (j / 4) * kQuadBytes, _mm512_or_si512(low, high));
  }
  const __m512 old_max = _mm512_loadu_ps(row_max);
  const __m512 new_max = _mm512_max_ps(old_max, block_max);
  const __m512 ln2 = _mm512_set1_ps(1.0f / kLog2E);
  // simd::exp clamps, so the first block's -inf old max gives a correction of ~0, not NaN
  const __m512 old_correction = simd::exp<Vec>(_mm512_mul_ps(_mm512_sub_ps(old_max, new_max), ln2));
  const __m512 new_block_scale = simd::exp<Vec>(_mm512_mul_ps(_mm512_sub_ps(block_max, new_max), ln2));
  _mm512_storeu_ps(row_max, new_max);
  _mm512_storeu_ps(correction, old_correction);
  _mm512_storeu_ps(block_scale, new_block_scale);
  _mm512_storeu_ps(row_sum, _mm512_fmadd_ps(_mm512_loadu_ps(row_sum), old_correction,
                                            _mm512_mul_ps(_mm512_cvtepi32_ps(block_sum), new_block_scale)));
}

// Each query rounded to int8 with its own scale and stored + 128 in [head_dim / 4][Q][4]; its scale,
// with 1 / sqrt(head_dim) and log2(e), goes to query_scales. Lanes up to `lanes` past n_queries hold
// zero queries (128) of scale 0.
void quantize_queries(const Int8AttentionTile& tile, int64_t lanes, const Int8AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const float score_scale = kLog2E / std::sqrt(static_cast<float>(d));
  for (int64_t i = 0; i < lanes; ++i) {
    if (i >= tile.n_queries) {
      for (int64_t c = 0; c < d; c += 4) std::memset(scratch.queries + (c / 4) * kQuadBytes + 4 * i, 128, 4);
      scratch.query_scales[i] = 0.0f;
      continue;
    }
    const float* query = tile.q + i * tile.row_stride;
    float max_abs = 0.0f;
    for (int64_t c = 0; c < d; ++c) max_abs = std::max(max_abs, std::fabs(query[c]));
    const float inverse_scale = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
    for (int64_t c = 0; c < d; ++c) {
      scratch.queries[(c / 4) * kQuadBytes + 4 * i + c % 4] =
          static_cast<uint8_t>(std::lrint(query[c] * inverse_scale) + 128);
    }
    scratch.query_scales[i] = max_abs / 127.0f * score_scale;
  }
}

template <int Vectors>
void attend_tile_lanes(const Int8AttentionTile& tile, const Int8AttentionScratch& scratch) {
  constexpr int64_t lanes = kLanes * Vectors;
  const int64_t d = tile.head_dim;
  quantize_queries(tile, lanes, scratch);
  std::fill(scratch.output_t, scratch.output_t + d * Q, 0.0f);
  std::fill(scratch.row_max, scratch.row_max + lanes, -std::numeric_limits<float>::infinity());
  std::fill(scratch.row_sum, scratch.row_sum + lanes, 0.0f);
  for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kAttentionKeyTile) {
    const int64_t n_keys = std::min(kAttentionKeyTile, tile.n_keys - first_key);
    // keys past n_keys (zero padding up to the 8-key step) score 0 and are left out of the softmax
    for (int64_t j = 0; j < n_keys; j += kRows) {
      score_product<Vectors>(tile.keys + (first_key + j) * d, tile.key_scales + first_key + j,
                             tile.key_offsets + first_key + j, scratch, d, scratch.scores_t + j * Q);
    }
    for (int64_t i = 0; i < lanes; i += kLanes) {
      softmax_update(scratch.scores_t + i, n_keys, scratch.row_max + i, scratch.row_sum + i, scratch.correction + i,
                     scratch.block_scale + i, scratch.probabilities + 4 * i);
    }
    output_products<Vectors>(tile, tile.values_t + first_key * d, (n_keys + 3) / 4, scratch);
  }
  for (int64_t i = 0; i < tile.n_queries; ++i) {
    const float inverse_sum = 1.0f / scratch.row_sum[i];
    for (int64_t c = 0; c < d; ++c) tile.out[i * tile.row_stride + c] = scratch.output_t[c * Q + i] * inverse_sum;
  }
}

void attend_tile_int8(const Int8AttentionTile& tile, const Int8AttentionScratch& scratch) {
  with_query_vectors(tile.n_queries, [&](auto vectors) { attend_tile_lanes<decltype(vectors)::value>(tile, scratch); });
}

}  // namespace

void add_int8_vision_attention(IsaOps& table) { table.vision_tile_int8 = attend_tile_int8; }

}  // namespace qvl::avx512
