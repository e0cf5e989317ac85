// The attention tile routine with AVX2 + FMA: the same blocks and online softmax as the scalar
// reference, with register-blocked micro-kernels for scores = q k^T (6 queries x 16 keys) and
// output += p v (2 queries x up to 40 dimensions), and a vectorised exp.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/vision_attention.h"

namespace qvl::avx2 {

namespace {

constexpr int kScoreRows = 6;      // 6 x 2 accumulators + 2 keys + 1 query = 15 of 16 registers
constexpr int kOutputRows = 2;     // 2 x 5 accumulators + 5 values + 1 probability = 16 registers
constexpr int kMaxOutputVectors = 5;

// e^x for x <= 0 within ~2 ulp: x = n ln2 + r with |r| <= ln2/2, e^r by the Cephes polynomial,
// 2^n put into the exponent. Inputs below -87 (including -inf) give ~1e-38 instead of 0, which the
// caller's sums cannot tell from 0.
inline __m256 exp_ps(__m256 x) {
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
  const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
  r = _mm256_fnmadd_ps(n, ln2_lo, r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}

inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// scores[r][0..16) = sum_c queries[r][c] * keys_t[c][0..16) for kScoreRows rows.
void score_block(const float* queries, int64_t d, const float* keys_t, float* scores) {
  __m256 acc[kScoreRows][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < d; ++c) {
    __m256 keys_lo = _mm256_loadu_ps(keys_t + c * kAttentionKeyTile);
    __m256 keys_hi = _mm256_loadu_ps(keys_t + c * kAttentionKeyTile + 8);
    for (int r = 0; r < kScoreRows; ++r) {
      __m256 query = _mm256_broadcast_ss(queries + r * d + c);
      acc[r][0] = _mm256_fmadd_ps(query, keys_lo, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(query, keys_hi, acc[r][1]);
    }
  }
  for (int r = 0; r < kScoreRows; ++r) {
    _mm256_storeu_ps(scores + r * kAttentionKeyTile, acc[r][0]);
    _mm256_storeu_ps(scores + r * kAttentionKeyTile + 8, acc[r][1]);
  }
}

// output[r][0 .. 8W) += sum_j probs[r][j] * values[j][0 .. 8W) for kOutputRows rows.
template <int W>
void accumulate_block(const float* probs, int64_t n_keys, const float* values, int64_t row_stride, float* output,
                      int64_t d) {
  __m256 acc[kOutputRows][W];
  for (int r = 0; r < kOutputRows; ++r) {
    for (int w = 0; w < W; ++w) acc[r][w] = _mm256_loadu_ps(output + r * d + 8 * w);
  }
  for (int64_t j = 0; j < n_keys; ++j) {
    __m256 value[W];
    for (int w = 0; w < W; ++w) value[w] = _mm256_loadu_ps(values + j * row_stride + 8 * w);
    for (int r = 0; r < kOutputRows; ++r) {
      __m256 p = _mm256_broadcast_ss(probs + r * kAttentionKeyTile + j);
      for (int w = 0; w < W; ++w) acc[r][w] = _mm256_fmadd_ps(p, value[w], acc[r][w]);
    }
  }
  for (int r = 0; r < kOutputRows; ++r) {
    for (int w = 0; w < W; ++w) _mm256_storeu_ps(output + r * d + 8 * w, acc[r][w]);
  }
}

void accumulate_columns(int vectors, const float* probs, int64_t n_keys, const float* values, int64_t row_stride,
                        float* output, int64_t d) {
  switch (vectors) {
    case 1: accumulate_block<1>(probs, n_keys, values, row_stride, output, d); break;
    case 2: accumulate_block<2>(probs, n_keys, values, row_stride, output, d); break;
    case 3: accumulate_block<3>(probs, n_keys, values, row_stride, output, d); break;
    case 4: accumulate_block<4>(probs, n_keys, values, row_stride, output, d); break;
    default: accumulate_block<5>(probs, n_keys, values, row_stride, output, d); break;
  }
}

// Turns one row of scores into probabilities against the updated running max, and rescales the
// row's running sum and output by exp(old max - new max).
void softmax_update(float* scores, int64_t n_keys, int64_t padded_keys, float* row_max, float* row_sum,
                    float* output, int64_t d) {
  std::fill(scores + n_keys, scores + padded_keys, -std::numeric_limits<float>::infinity());
  __m256 max_vec = _mm256_loadu_ps(scores);
  for (int64_t j = 8; j < padded_keys; j += 8) max_vec = _mm256_max_ps(max_vec, _mm256_loadu_ps(scores + j));
  const float new_max = std::max(*row_max, horizontal_max(max_vec));
  const float correction = std::exp(*row_max - new_max);
  const __m256 shift = _mm256_set1_ps(new_max);
  __m256 sum_vec = _mm256_setzero_ps();
  for (int64_t j = 0; j < padded_keys; j += 8) {
    __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(scores + j), shift));
    _mm256_storeu_ps(scores + j, p);
    if (j + 8 <= n_keys) sum_vec = _mm256_add_ps(sum_vec, p);
  }
  float block_sum = horizontal_sum(sum_vec);
  for (int64_t j = n_keys / 8 * 8; j < n_keys; ++j) block_sum += scores[j];
  *row_max = new_max;
  *row_sum = *row_sum * correction + block_sum;
  const __m256 factor = _mm256_set1_ps(correction);
  for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(output + c, _mm256_mul_ps(_mm256_loadu_ps(output + c), factor));
}

}  // namespace

void attend_tile(const AttentionTile& tile, const AttentionScratch& scratch) {
  const int64_t d = tile.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // Rows past n_queries are zero queries: the micro-kernels run on whole row groups and those rows'
  // results are never written out.
  const int64_t rows = (tile.n_queries + kScoreRows - 1) / kScoreRows * kScoreRows;
  std::fill(scratch.queries, scratch.queries + rows * d, 0.0f);
  std::fill(scratch.output, scratch.output + rows * d, 0.0f);
  for (int64_t i = 0; i < tile.n_queries; ++i) {
    for (int64_t c = 0; c < d; ++c) scratch.queries[i * d + c] = tile.q[i * tile.row_stride + c] * scale;
  }
  std::fill(scratch.row_max, scratch.row_max + rows, -std::numeric_limits<float>::infinity());
  std::fill(scratch.row_sum, scratch.row_sum + rows, 0.0f);

  for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kAttentionKeyTile) {
    const int64_t n_keys = std::min(kAttentionKeyTile, tile.n_keys - first_key);
    const int64_t padded_keys = (n_keys + 15) / 16 * 16;
    const float* keys_t = tile.keys_t + first_key * d;
    for (int64_t i = 0; i < rows; i += kScoreRows) {
      for (int64_t j = 0; j < padded_keys; j += 16) {
        score_block(scratch.queries + i * d, d, keys_t + j, scratch.scores + i * kAttentionKeyTile + j);
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      softmax_update(scratch.scores + i * kAttentionKeyTile, n_keys, padded_keys, scratch.row_max + i,
                     scratch.row_sum + i, scratch.output + i * d, d);
    }
    const float* values = tile.v + first_key * tile.row_stride;
    for (int64_t i = 0; i < rows; i += kOutputRows) {
      for (int64_t c = 0; c < d; c += 8 * kMaxOutputVectors) {
        int vectors = static_cast<int>(std::min<int64_t>(kMaxOutputVectors, (d - c) / 8));
        accumulate_columns(vectors, scratch.scores + i * kAttentionKeyTile, n_keys, values + c, tile.row_stride,
                           scratch.output + i * d + c, d);
      }
    }
  }
  for (int64_t i = 0; i < tile.n_queries; ++i) {
    const __m256 inverse_sum = _mm256_set1_ps(1.0f / scratch.row_sum[i]);
    for (int64_t c = 0; c < d; c += 8) {
      _mm256_storeu_ps(tile.out + i * tile.row_stride + c,
                       _mm256_mul_ps(_mm256_loadu_ps(scratch.output + i * d + c), inverse_sum));
    }
  }
}

}  // namespace qvl::avx2
