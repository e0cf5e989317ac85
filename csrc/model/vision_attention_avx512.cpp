// The attention tile routine with AVX-512: the AVX2 routine's blocks and online softmax with 16 query
// lanes per vector, so a whole 48-query tile is 3 vectors. With 32 registers the register-blocked
// product grows to 8 rows x 48 queries (24 accumulators), which halves the loads per FMA.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/avx512_math.h"
#include "model/vision_attention.h"

namespace qvl::avx512 {

namespace {

constexpr int64_t Q = kAttentionQueryTile;
constexpr int64_t kLanes = 16;
constexpr int kRows = 8;         // rows of the main micro-kernel's output tile
constexpr int kTailRows = 4;     // a head_dim that is 4 mod 8 ends with one 4-row step
constexpr int kMaxVectors = 3;   // 3 x 16 = 48 queries: 24 accumulators + 3 loads + broadcasts <= 32 registers
static_assert(Q == kLanes * kMaxVectors, "a query tile is three vectors of query lanes");
static_assert(kAttentionKeyTile % kRows == 0, "the key tile must hold whole 8-row steps");

// c[r][0..16 Vectors) (+)= sum_p a[r * lda + p] * b[p * Q + 0..16 Vectors) for r < Rows; c's rows are
// Q apart. The loops over the register tile are unrolled by pragma so the accumulators stay in registers.
template <int Rows, int Vectors, bool Accumulate>
void product(const float* a, int64_t lda, const float* b, int64_t depth, float* c) {
  __m512 acc[Rows][Vectors];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) {
      acc[r][v] = Accumulate ? _mm512_loadu_ps(c + r * Q + kLanes * v) : _mm512_setzero_ps();
    }
  }
  for (int64_t p = 0; p < depth; ++p) {
    __m512 row[Vectors];
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) row[v] = _mm512_loadu_ps(b + p * Q + kLanes * v);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const __m512 scalar = _mm512_set1_ps(a[r * lda + p]);
#pragma GCC unroll 3
      for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_fmadd_ps(scalar, row[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) _mm512_storeu_ps(c + r * Q + kLanes * v, acc[r][v]);
  }
}

// The product over the first `lanes` queries (a multiple of 16): one pass with as many vectors as that
// takes, so a short last block of a segment does not pay for a whole tile.
template <int Rows, bool Accumulate>
void product_over_lanes(const float* a, int64_t lda, const float* b, int64_t depth, float* c, int64_t lanes) {
  switch (lanes / kLanes) {
    case 1: return product<Rows, 1, Accumulate>(a, lda, b, depth, c);
    case 2: return product<Rows, 2, Accumulate>(a, lda, b, depth, c);
    default: return product<Rows, kMaxVectors, Accumulate>(a, lda, b, depth, c);
  }
}

// For 16 queries (lanes): the new running max over this block's n_keys scores, the scores turned into
// probabilities against it, and the running sum and output rescaled by exp(old max - new max).
void softmax_update(float* scores_t, int64_t n_keys, float* row_max, float* row_sum, float* output_t, int64_t d) {
  const __m512 old_max = _mm512_loadu_ps(row_max);
  __m512 new_max = old_max;
  for (int64_t j = 0; j < n_keys; ++j) new_max = _mm512_max_ps(new_max, _mm512_loadu_ps(scores_t + j * Q));
  const __m512 correction = exp_ps(_mm512_sub_ps(old_max, new_max));
  __m512 block_sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n_keys; ++j) {
    const __m512 p = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(scores_t + j * Q), new_max));
    _mm512_storeu_ps(scores_t + j * Q, p);
    block_sum = _mm512_add_ps(block_sum, p);
  }
  _mm512_storeu_ps(row_max, new_max);
  _mm512_storeu_ps(row_sum, _mm512_fmadd_ps(_mm512_loadu_ps(row_sum), correction, block_sum));
  for (int64_t c = 0; c < d; ++c) {
    _mm512_storeu_ps(output_t + c * Q, _mm512_mul_ps(_mm512_loadu_ps(output_t + c * Q), correction));
  }
}

// Prefetches floats [from / of, to / of) of the `floats` floats at `data` into L1. The products call it
// a slice per step: a segment's keys and values of one head (2 x 1.1 MB at 3552 patches) no longer sit
// in L2 when the next query tile comes, and the hardware prefetcher alone leaves the FMAs waiting.
inline void prefetch_fraction(const float* data, int64_t floats, int64_t from, int64_t to, int64_t of) {
  for (int64_t f = floats * from / of; f < floats * to / of; f += kLanes) {
    _mm_prefetch(reinterpret_cast<const char*>(data + f), _MM_HINT_T0);
  }
}

}  // namespace

void attend_tile(const AttentionTile& tile, const AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // Queries past n_queries are zeros up to a whole vector; their results are never written out.
  const int64_t lanes = (tile.n_queries + kLanes - 1) / kLanes * kLanes;
  for (int64_t c = 0; c < d; ++c) {
    float* column = scratch.queries_t + c * Q;
    for (int64_t i = 0; i < tile.n_queries; ++i) column[i] = tile.q[i * tile.row_stride + c] * scale;
    std::fill(column + tile.n_queries, column + lanes, 0.0f);
    std::fill(scratch.output_t + c * Q, scratch.output_t + c * Q + lanes, 0.0f);
  }
  std::fill(scratch.row_max, scratch.row_max + lanes, -std::numeric_limits<float>::infinity());
  std::fill(scratch.row_sum, scratch.row_sum + lanes, 0.0f);

  const int64_t full_dims = d / kRows * kRows;
  for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kAttentionKeyTile) {
    const int64_t n_keys = std::min(kAttentionKeyTile, tile.n_keys - first_key);
    const float* keys = tile.keys + first_key * d;
    const float* values_t = tile.values_t + first_key * d;
    const int64_t block_floats = kAttentionKeyTile * d;
    const bool has_next_block = first_key + kAttentionKeyTile < tile.n_keys;
    // scores_t[j][i] = k_j . q_i, 8 keys at a time (the keys past n_keys are zero padding, ignored
    // below), meanwhile fetching this block's values
    for (int64_t j = 0; j < n_keys; j += kRows) {
      prefetch_fraction(values_t, block_floats, j, j + kRows, kAttentionKeyTile);
      product_over_lanes<kRows, false>(keys + j * d, d, scratch.queries_t, d, scratch.scores_t + j * Q, lanes);
    }
    for (int64_t i = 0; i < lanes; i += kLanes) {
      softmax_update(scratch.scores_t + i, n_keys, scratch.row_max + i, scratch.row_sum + i, scratch.output_t + i, d);
    }
    // output_t[c][i] += sum_j v_j[c] p[j][i], 8 dimensions at a time, then 4 if head_dim is 4 mod 8,
    // meanwhile fetching the next block's keys
    for (int64_t c = 0; c < full_dims; c += kRows) {
      if (has_next_block) prefetch_fraction(keys + block_floats, block_floats, c, c + kRows, full_dims);
      product_over_lanes<kRows, true>(values_t + c * kAttentionKeyTile, kAttentionKeyTile, scratch.scores_t, n_keys,
                                      scratch.output_t + c * Q, lanes);
    }
    if (full_dims < d) {
      product_over_lanes<kTailRows, true>(values_t + full_dims * kAttentionKeyTile, kAttentionKeyTile,
                                          scratch.scores_t, n_keys, scratch.output_t + full_dims * Q, lanes);
    }
  }
  for (int64_t i = 0; i < tile.n_queries; ++i) {
    const float inverse_sum = 1.0f / scratch.row_sum[i];
    for (int64_t c = 0; c < d; ++c) tile.out[i * tile.row_stride + c] = scratch.output_t[c * Q + i] * inverse_sum;
  }
}

}  // namespace qvl::avx512
