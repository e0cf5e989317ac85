// The attention tile routine with AVX2 + FMA: the scalar reference's blocks and online softmax, with
// queries along the vector lanes. Scores (k q^T) and output (v^T p) are then both one register-blocked
// product of 4 rows x 24 queries, and the softmax is element-wise across queries with a vectorised exp.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/avx2_math.h"
#include "model/vision_attention.h"

namespace qvl::avx2 {

namespace {

constexpr int64_t Q = kAttentionQueryTile;
constexpr int kRows = 4;       // rows of the micro-kernel's output tile
constexpr int kVectors = 3;    // 3 x 8 = 24 queries: 12 accumulators + 3 loads + 1 broadcast = 16 registers
constexpr int64_t kStrip = 8 * kVectors;
static_assert(Q % kStrip == 0 && kAttentionKeyTile % kRows == 0, "tiles must hold whole micro-kernel steps");

// c[r][0..24) (+)= sum_p a[r * lda + p] * b[p * Q + 0..24) for r < 4; c's rows are Q apart.
// The loops over the register tile are unrolled by pragma: without it GCC keeps the accumulators in
// memory and stores them on every step.
template <bool Accumulate>
void product_4x24(const float* a, int64_t lda, const float* b, int64_t depth, float* c) {
  __m256 acc[kRows][kVectors];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < kVectors; ++v) acc[r][v] = Accumulate ? _mm256_loadu_ps(c + r * Q + 8 * v) : _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < depth; ++p) {
    __m256 row[kVectors];
#pragma GCC unroll 3
    for (int v = 0; v < kVectors; ++v) row[v] = _mm256_loadu_ps(b + p * Q + 8 * v);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      __m256 scalar = _mm256_broadcast_ss(a + r * lda + p);
#pragma GCC unroll 3
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm256_fmadd_ps(scalar, row[v], acc[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < kVectors; ++v) _mm256_storeu_ps(c + r * Q + 8 * v, acc[r][v]);
  }
}

// For 8 queries (lanes): the new running max over this block's n_keys scores, the scores turned into
// probabilities against it, and the running sum and output rescaled by exp(old max - new max).
void softmax_update(float* scores_t, int64_t n_keys, float* row_max, float* row_sum, float* output_t, int64_t d) {
  const __m256 old_max = _mm256_loadu_ps(row_max);
  __m256 new_max = old_max;
  for (int64_t j = 0; j < n_keys; ++j) new_max = _mm256_max_ps(new_max, _mm256_loadu_ps(scores_t + j * Q));
  const __m256 correction = exp_ps(_mm256_sub_ps(old_max, new_max));
  __m256 block_sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n_keys; ++j) {
    __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(scores_t + j * Q), new_max));
    _mm256_storeu_ps(scores_t + j * Q, p);
    block_sum = _mm256_add_ps(block_sum, p);
  }
  _mm256_storeu_ps(row_max, new_max);
  _mm256_storeu_ps(row_sum, _mm256_fmadd_ps(_mm256_loadu_ps(row_sum), correction, block_sum));
  for (int64_t c = 0; c < d; ++c) {
    _mm256_storeu_ps(output_t + c * Q, _mm256_mul_ps(_mm256_loadu_ps(output_t + c * Q), correction));
  }
}

}  // namespace

void attend_tile(const AttentionTile& tile, const AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // Queries past n_queries are zeros up to a whole strip; their results are never written out.
  const int64_t lanes = (tile.n_queries + kStrip - 1) / kStrip * kStrip;
  for (int64_t c = 0; c < d; ++c) {
    float* column = scratch.queries_t + c * Q;
    for (int64_t i = 0; i < tile.n_queries; ++i) column[i] = tile.q[i * tile.row_stride + c] * scale;
    std::fill(column + tile.n_queries, column + lanes, 0.0f);
    std::fill(scratch.output_t + c * Q, scratch.output_t + c * Q + lanes, 0.0f);
  }
  std::fill(scratch.row_max, scratch.row_max + lanes, -std::numeric_limits<float>::infinity());
  std::fill(scratch.row_sum, scratch.row_sum + lanes, 0.0f);

  for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kAttentionKeyTile) {
    const int64_t n_keys = std::min(kAttentionKeyTile, tile.n_keys - first_key);
    const float* keys = tile.keys + first_key * d;
    const float* values_t = tile.values_t + first_key * d;
    // scores_t[j][i] = k_j . q_i, 4 keys at a time (the keys past n_keys are zero padding, ignored below)
    for (int64_t j = 0; j < n_keys; j += kRows) {
      for (int64_t i = 0; i < lanes; i += kStrip) {
        product_4x24<false>(keys + j * d, d, scratch.queries_t + i, d, scratch.scores_t + j * Q + i);
      }
    }
    for (int64_t i = 0; i < lanes; i += 8) {
      softmax_update(scratch.scores_t + i, n_keys, scratch.row_max + i, scratch.row_sum + i, scratch.output_t + i, d);
    }
    // output_t[c][i] += sum_j v_j[c] p[j][i], 4 dimensions at a time
    for (int64_t c = 0; c < d; c += kRows) {
      for (int64_t i = 0; i < lanes; i += kStrip) {
        product_4x24<true>(values_t + c * kAttentionKeyTile, kAttentionKeyTile, scratch.scores_t + i, n_keys,
                           scratch.output_t + c * Q + i);
      }
    }
  }
  for (int64_t i = 0; i < tile.n_queries; ++i) {
    const float inverse_sum = 1.0f / scratch.row_sum[i];
    for (int64_t c = 0; c < d; ++c) tile.out[i * tile.row_stride + c] = scratch.output_t[c * Q + i] * inverse_sum;
  }
}

}  // namespace qvl::avx2
