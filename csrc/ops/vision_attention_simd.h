// The ViT attention's tile routine (attention_tiles.h) for a vector type V (simd/vec_*.h): the scalar
// reference's blocks and online softmax (vision_attention.cpp) with the queries along the vector lanes.
// Scores (k q^T) and output (v^T p) are then both the register-blocked broadcast product of
// simd/micro_gemm.h, Rows keys or value dimensions by up to StripVectors vectors of queries per step,
// and the softmax is element-wise across queries with a vectorised exp. No intrinsics here.
// The score product is a policy: FloatScores below (every ISA, every precision), or one on integers an
// ISA file supplies (vision_attention_int16_avx512.cpp: Fast on AVX-512).
//
// avx512 runs 8 rows x 3 vectors (24 of the 32 registers accumulate: half the loads per FMA of 4 x 3)
// and prefetches: a segment's keys and values of one head (2 x 1.1 MB at 3552 patches) no longer sit
// in L2 when the next query tile comes, and the hardware prefetcher alone leaves the FMAs waiting.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ops/attention_tiles.h"
#include "simd/micro_gemm.h"
#include "simd/vec_math.h"

namespace qvl::simd {

template <typename V, int Rows, int StripVectors, bool Prefetch>
struct VisionAttention {
  static constexpr int64_t Q = kAttentionQueryTile;
  static constexpr int kTailRows = 4;  // a head_dim that is 4 mod Rows ends with 4-row steps
  static_assert(kAttentionKeyTile % Rows == 0 && Rows % kTailRows == 0, "the key tile must hold whole steps");
  static_assert(Q % V::kLanes == 0, "a query tile is whole vectors of query lanes");
  using F = typename V::F;

  // c[r][0..lanes) (+)= sum_p a[r * lda + p] * b[p * Q + 0..lanes) for r < R; c's rows are Q apart.
  template <int R, int Vectors, bool Accumulate>
  static void product(const float* a, int64_t lda, const float* b, int64_t depth, float* c) {
    F acc[R][Vectors];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < Vectors; ++v) acc[r][v] = Accumulate ? V::load(c + r * Q + V::kLanes * v) : V::zero();
    }
    broadcast_product<FloatMadd<V>>(a, lda, 1, b, Q, depth, acc);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < Vectors; ++v) V::store(c + r * Q + V::kLanes * v, acc[r][v]);
    }
  }

  // The product over the queries [0, lanes) (a multiple of V::kLanes), a strip of at most StripVectors
  // vectors at a time; a strip short of that runs with the vectors it has, so a short last block of a
  // segment does not pay for a whole tile.
  template <int R, bool Accumulate, int Vectors = StripVectors>
  static void product_over_lanes(const float* a, int64_t lda, const float* b, int64_t depth, float* c, int64_t lanes) {
    constexpr int64_t kStrip = int64_t{V::kLanes} * Vectors;
    int64_t i = 0;
    for (; i + kStrip <= lanes; i += kStrip) product<R, Vectors, Accumulate>(a, lda, b + i, depth, c + i);
    if constexpr (Vectors > 1) {
      if (i < lanes) product_over_lanes<R, Accumulate, Vectors - 1>(a, lda, b + i, depth, c + i, lanes - i);
    }
  }

  // For V::kLanes queries: the new running max over this block's n_keys scores, the scores turned into
  // probabilities against it, and the running sum and output rescaled by exp(old max - new max).
  static void softmax_update(float* scores_t, int64_t n_keys, float* row_max, float* row_sum, float* output_t,
                             int64_t d) {
    const F old_max = V::load(row_max);
    F new_max = old_max;
    for (int64_t j = 0; j < n_keys; ++j) new_max = V::max(new_max, V::load(scores_t + j * Q));
    const F correction = exp<V>(V::sub(old_max, new_max));
    F block_sum = V::zero();
    for (int64_t j = 0; j < n_keys; ++j) {
      const F p = exp<V>(V::sub(V::load(scores_t + j * Q), new_max));
      V::store(scores_t + j * Q, p);
      block_sum = V::add(block_sum, p);
    }
    V::store(row_max, new_max);
    V::store(row_sum, V::fma(V::load(row_sum), correction, block_sum));
    for (int64_t c = 0; c < d; ++c) V::store(output_t + c * Q, V::mul(V::load(output_t + c * Q), correction));
  }

  // Prefetches bytes [from / of, to / of) of the `bytes` bytes at `data` into L1, a slice per step
  // of the products.
  static void prefetch_fraction(const void* data, int64_t bytes, int64_t from, int64_t to, int64_t of) {
    if constexpr (Prefetch) {
      const char* base = static_cast<const char*>(data);
      for (int64_t b = bytes * from / of; b < bytes * to / of; b += 64) __builtin_prefetch(base + b, 0, 3);
    }
  }

  // The score product in float: queries scaled by 1 / sqrt(head_dim) and transposed into queries_t.
  struct FloatScores {
    static void prepare(const AttentionTile& tile, const AttentionScratch& scratch, int64_t lanes) {
      const int64_t d = tile.head_dim;
      const float scale = 1.0f / std::sqrt(static_cast<float>(d));
      for (int64_t c = 0; c < d; ++c) {
        float* column = scratch.queries_t + c * Q;
        for (int64_t i = 0; i < tile.n_queries; ++i) column[i] = tile.q[i * tile.row_stride + c] * scale;
        std::fill(column + tile.n_queries, column + lanes, 0.0f);
      }
    }
    // scores_t[0..Rows)[0..lanes) for the Rows keys from `key` on.
    static void product(const AttentionTile& tile, int64_t key, const AttentionScratch& scratch, float* scores_t,
                        int64_t lanes) {
      const int64_t d = tile.head_dim;
      product_over_lanes<Rows, false>(tile.keys + key * d, d, scratch.queries_t, d, scores_t, lanes);
    }
    static const void* key_block(const AttentionTile& tile, int64_t first_key) { return tile.keys + first_key * tile.head_dim; }
    static int64_t key_block_bytes(int64_t d) { return kAttentionKeyTile * d * int64_t{sizeof(float)}; }
  };

  // The softmax step and output product in float: each query's running max, sum and output rescaled,
  // then output_t[c][i] += sum_j v_j[c] p[j][i], Rows dimensions at a time, then 4 at a time.
  struct FloatOutputs {
    static const void* value_block(const AttentionTile& tile, int64_t first_key) {
      return tile.values_t + first_key * tile.head_dim;
    }
    static int64_t value_block_bytes(int64_t d) { return kAttentionKeyTile * d * int64_t{sizeof(float)}; }
    // One key block's softmax step and output product, prefetching next_key_bytes at next_keys (the
    // next block's keys, or null) meanwhile.
    static void block(const AttentionTile& tile, int64_t first_key, int64_t n_keys, const AttentionScratch& scratch,
                      int64_t lanes, const void* next_keys, int64_t next_key_bytes) {
      const int64_t d = tile.head_dim;
      for (int64_t i = 0; i < lanes; i += V::kLanes) {
        softmax_update(scratch.scores_t + i, n_keys, scratch.row_max + i, scratch.row_sum + i, scratch.output_t + i, d);
      }
      const float* values_t = tile.values_t + first_key * d;
      const int64_t full_dims = d / Rows * Rows;
      for (int64_t c = 0; c < full_dims; c += Rows) {
        if (next_keys != nullptr) prefetch_fraction(next_keys, next_key_bytes, c, c + Rows, full_dims);
        product_over_lanes<Rows, true>(values_t + c * kAttentionKeyTile, kAttentionKeyTile, scratch.scores_t, n_keys,
                                       scratch.output_t + c * Q, lanes);
      }
      for (int64_t c = full_dims; c < d; c += kTailRows) {
        product_over_lanes<kTailRows, true>(values_t + c * kAttentionKeyTile, kAttentionKeyTile, scratch.scores_t,
                                            n_keys, scratch.output_t + c * Q, lanes);
      }
    }
  };

  // The op table's vision_tile entry (op_table.h).
  static void attend_tile(const AttentionTile& tile, const AttentionScratch& scratch) {
    attend<FloatScores, FloatOutputs>(tile, scratch);
  }

  // The tile with the score product of the policy Scores (FloatScores' interface) and the softmax step
  // and output product of Outputs (FloatOutputs').
  template <typename Scores, typename Outputs>
  static void attend(const AttentionTile& tile, const AttentionScratch& scratch) {
    const int64_t d = tile.head_dim;
    // Queries past n_queries are zeros up to a whole vector; their results are never written out.
    const int64_t lanes = (tile.n_queries + V::kLanes - 1) / V::kLanes * V::kLanes;
    Scores::prepare(tile, scratch, lanes);
    for (int64_t c = 0; c < d; ++c) std::fill(scratch.output_t + c * Q, scratch.output_t + c * Q + lanes, 0.0f);
    std::fill(scratch.row_max, scratch.row_max + lanes, -std::numeric_limits<float>::infinity());
    std::fill(scratch.row_sum, scratch.row_sum + lanes, 0.0f);

    for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kAttentionKeyTile) {
      const int64_t n_keys = std::min(kAttentionKeyTile, tile.n_keys - first_key);
      const void* values = Outputs::value_block(tile, first_key);
      // scores_t[j][i] = k_j . q_i, Rows keys at a time (the keys past n_keys are zero padding,
      // ignored below), meanwhile fetching this block's values
      for (int64_t j = 0; j < n_keys; j += Rows) {
        prefetch_fraction(values, Outputs::value_block_bytes(d), j, j + Rows, kAttentionKeyTile);
        Scores::product(tile, first_key + j, scratch, scratch.scores_t + j * Q, lanes);
      }
      const int64_t next_key = first_key + kAttentionKeyTile;
      Outputs::block(tile, first_key, n_keys, scratch, lanes,
                     next_key < tile.n_keys ? Scores::key_block(tile, next_key) : nullptr, Scores::key_block_bytes(d));
    }
    for (int64_t i = 0; i < tile.n_queries; ++i) {
      const float inverse_sum = 1.0f / scratch.row_sum[i];
      for (int64_t c = 0; c < d; ++c) tile.out[i * tile.row_stride + c] = scratch.output_t[c * Q + i] * inverse_sum;
    }
  }
};

}  // namespace qvl::simd
