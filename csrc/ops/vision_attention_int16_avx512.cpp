// The Fast attention tile routine on AVX-512: the float tile (vision_attention_simd.h) with both of its
// products, scores k q^T and output v^T p, on VNNI's vpdpwssd (32 s16 x s16 products into 16 int32
// lanes per instruction, twice the multiplies of an FMA); the softmax stays float. The float tile's
// products run near the FMA peak, so halving their instructions is what is left to gain there. One
// layer's attention at 1024x683 (16 heads of 80, 2 threads, Zen 5): 176 ms float, 134 ms this.
//
// Error: a query or key is rounded to int16 levels with one scale per row of head_dim values, at most
// L = int16_score_levels(head_dim) levels (5181 at head_dim 80; the whole dot product fits one int32,
// so there is one conversion to float per score); a value with one scale per channel over its segment,
// and a probability against its 64-key block's max, at most int16_output_levels() = 5792 levels. Each
// element's rounding error is at most 1/(2L) of its row's (channel's, block's) largest |value|, about
// 2^-13: between float16 (2^-11 per element, what llama.cpp's clip rounds activations to) and float.
// The encoder's embedding error against exact moved from 2.95-2.98e-4 to 3.08-3.12e-4 on the fixtures'
// images (python -m benchmarks.vision_error). Rounding scores to bfloat16 instead (2^-9) gave 1e-3,
// and bfloat16 probabilities and values 5e-4 to 1e-3.
//
// Queries, and probabilities, stay along the vector lanes: each 32-bit lane holds 2 consecutive
// dimensions (scores) or 2 consecutive keys (output) of one query, and the broadcast operand is the
// same 2 dimensions of one key or 2 keys of one value channel.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "ops/attention_tiles.h"
#include "ops/integer_attention_avx512.h"
#include "ops/op_table.h"
#include "simd/vec_avx512.h"
#include "simd/vec_math.h"
#include "ops/vision_attention_simd.h"

namespace qvl::avx512 {

namespace {

constexpr int64_t Q = kAttentionQueryTile;
constexpr int kRows = 8;        // keys or value channels per register tile, as the float tile's
constexpr int kTailRows = 4;    // a head_dim that is 4 mod 8 ends with one 4-channel step
constexpr int kMaxVectors = 3;  // 3 x 16 = 48 queries: 24 accumulators
using FloatTile = simd::VisionAttention<Vec, kRows, kMaxVectors, true>;

// The score product on int16 levels. The queries' levels live in the float scratch's queries_t
// (head_dim x Q floats hold head_dim / 2 x Q pairs of int16 and then Q float scales).
struct Int16Scores {
  static int16_t* query_levels(const AttentionScratch& scratch) { return reinterpret_cast<int16_t*>(scratch.queries_t); }
  static float* query_scales(const AttentionScratch& scratch, int64_t d) { return scratch.queries_t + d * Q / 2; }

  // Rounds each query to levels, laid out [d / 2][Q][2], with its scale (times 1 / sqrt(d), the
  // softmax's) in query_scales; lanes past n_queries get zeros.
  static void prepare(const AttentionTile& tile, const AttentionScratch& scratch, int64_t lanes) {
    const int64_t d = tile.head_dim;
    const float levels = static_cast<float>(int16_score_levels(d));
    const float softmax_scale = 1.0f / std::sqrt(static_cast<float>(d));
    int16_t* out = query_levels(scratch);
    float* scales = query_scales(scratch, d);
    for (int64_t i = 0; i < lanes; ++i) {
      const float* query = tile.q + i * tile.row_stride;
      float max_abs = 0.0f;
      if (i < tile.n_queries) {
        for (int64_t c = 0; c < d; ++c) max_abs = std::max(max_abs, std::fabs(query[c]));
      }
      const float inverse = max_abs > 0.0f ? levels / max_abs : 0.0f;
      for (int64_t c = 0; c < d; ++c) {
        const float x = i < tile.n_queries ? query[c] * inverse : 0.0f;
        out[(c / 2) * Q * 2 + i * 2 + c % 2] = static_cast<int16_t>(std::lrint(x));
      }
      scales[i] = max_abs / levels * softmax_scale;
    }
  }

  template <int Vectors>
  static void product_vectors(const AttentionTile& tile, int64_t key, const AttentionScratch& scratch,
                              float* scores_t) {
    const int64_t d = tile.head_dim;
    integer_product<DpwssdMadd, kRows, Vectors>(tile.int16_keys + key * d, d, query_levels(scratch), d / 2,
                                                reinterpret_cast<int32_t*>(scores_t));
    const float* scales = query_scales(scratch, d);
    for (int r = 0; r < kRows; ++r) {
      const __m512 key_scale = _mm512_set1_ps(tile.key_scales[key + r]);
#pragma GCC unroll 3
      for (int v = 0; v < Vectors; ++v) {
        float* score = scores_t + r * Q + Vec::kLanes * v;
        const __m512 scale = _mm512_mul_ps(key_scale, _mm512_loadu_ps(scales + Vec::kLanes * v));
        _mm512_storeu_ps(score, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(score)), scale));
      }
    }
  }

  // scores_t[0..8)[0..lanes) for the 8 keys from `key` on (FloatScores::product's contract).
  static void product(const AttentionTile& tile, int64_t key, const AttentionScratch& scratch, float* scores_t,
                      int64_t lanes) {
    with_query_vectors(lanes, [&](auto vectors) {
      product_vectors<decltype(vectors)::value>(tile, key, scratch, scores_t);
    });
  }
  static const void* key_block(const AttentionTile& tile, int64_t first_key) {
    return tile.int16_keys + first_key * tile.head_dim;
  }
  static int64_t key_block_bytes(int64_t d) { return kAttentionKeyTile * d * int64_t{sizeof(int16_t)}; }
};

// The softmax step and output product with int16 probabilities and values. A key block's
// probabilities are taken against the block's own max (so each block's largest is 1 and rounds to
// the full int16_output_levels()) and rounded to levels; the running output and sum take the block in
// with block_scale = exp(block max - running max) / levels, and are rescaled by correction = exp(old
// running max - new) as the float step does. The sums add the same rounded levels, so the rounding
// does not bias the weights' total.
struct Int16Outputs {
  // The tile routine's own scratch (AttentionScratch::own): probability levels laid out
  // [kAttentionKeyTile / 2][Q][2] (2 consecutive keys of one query per 32-bit lane), then per query
  // the block's correction and block_scale, then one 8 x Q block of integer sums.
  struct Own {
    explicit Own(const AttentionScratch& scratch)
        : levels(reinterpret_cast<int16_t*>(scratch.own)),
          correction(scratch.own + kAttentionKeyTile * Q / 2),
          block_scale(correction + Q),
          sums(reinterpret_cast<int32_t*>(block_scale + Q)) {}
    int16_t* levels;
    float* correction;
    float* block_scale;
    int32_t* sums;
  };
  static_assert(kAttentionKeyTile * Q / 2 + 2 * Q + kRows * Q <= AttentionScratch::kOwnFloats, "scratch too small");

  static const void* value_block(const AttentionTile& tile, int64_t first_key) {
    return tile.int16_values_t + first_key * tile.head_dim;
  }
  static int64_t value_block_bytes(int64_t d) { return kAttentionKeyTile * d * int64_t{sizeof(int16_t)}; }

  // 2^x for x <= 0 (0 below 2^-126): x = n + f with |f| <= 1/2, 2^f by a quartic fitted for relative
  // error (2.7e-6: 0.02 of a level's step at the block's max, 1 / 5792), times 2^n by vscalefps; half
  // the instructions of simd::exp, which the rounding to levels right after could not tell apart.
  static __m512 exp2_nonpositive(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(0.00957037602f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.0559187233f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.240247458f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.693121672f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.999999285f));
    return _mm512_scalef_ps(p, n);
  }

  // For 16 queries (lanes) from `lane` on: this block's probability levels (zero past n_keys up to
  // the pair), then the running max and sum and this block's correction and block_scale.
  static void softmax_step(const AttentionScratch& scratch, const Own& own, int64_t lane, int64_t n_keys) {
    constexpr float kLog2E = 1.44269504088896341f;
    const float* scores_t = scratch.scores_t + lane;
    __m512 block_max = _mm512_loadu_ps(scores_t);
    for (int64_t j = 1; j < n_keys; ++j) block_max = _mm512_max_ps(block_max, _mm512_loadu_ps(scores_t + j * Q));
    const __m512 levels = _mm512_set1_ps(static_cast<float>(int16_output_levels()));
    const __m512 log2e = _mm512_set1_ps(kLog2E), block_max_log2 = _mm512_mul_ps(block_max, log2e);
    __m512i level_sum = _mm512_setzero_si512();
    auto level = [&](int64_t j) {
      if (j >= n_keys) return _mm512_setzero_si512();
      const __m512 x = _mm512_fmsub_ps(_mm512_loadu_ps(scores_t + j * Q), log2e, block_max_log2);
      const __m512 p = exp2_nonpositive(_mm512_min_ps(x, _mm512_setzero_ps()));
      const __m512i rounded = _mm512_cvtps_epi32(_mm512_mul_ps(p, levels));  // to nearest, 0 .. levels
      level_sum = _mm512_add_epi32(level_sum, rounded);
      return rounded;
    };
    for (int64_t j = 0; j < n_keys; j += 2) {
      const __m512i low = level(j);
      const __m512i pair = _mm512_or_si512(low, _mm512_slli_epi32(level(j + 1), 16));
      _mm512_storeu_si512(own.levels + (j / 2) * Q * 2 + 2 * lane, pair);
    }
    const __m512 old_max = _mm512_loadu_ps(scratch.row_max + lane);
    const __m512 new_max = _mm512_max_ps(old_max, block_max);
    const __m512 correction = simd::exp<Vec>(_mm512_sub_ps(old_max, new_max));
    const __m512 block_scale = _mm512_div_ps(simd::exp<Vec>(_mm512_sub_ps(block_max, new_max)), levels);
    _mm512_storeu_ps(scratch.row_max + lane, new_max);
    _mm512_storeu_ps(own.correction + lane, correction);
    _mm512_storeu_ps(own.block_scale + lane, block_scale);
    const __m512 row_sum = _mm512_loadu_ps(scratch.row_sum + lane);
    _mm512_storeu_ps(scratch.row_sum + lane,
                     _mm512_fmadd_ps(_mm512_cvtepi32_ps(level_sum), block_scale, _mm512_mul_ps(row_sum, correction)));
  }

  // output_t[c + r] = output_t[c + r] * correction + (sum over the block's keys of value level x
  // probability level) * value scale * block_scale, for Rows channels from c.
  template <int Rows, int Vectors>
  static void product(const AttentionTile& tile, const int16_t* values_t, int64_t c, int64_t key_pairs,
                      const AttentionScratch& scratch, const Own& own) {
    integer_product<DpwssdMadd, Rows, Vectors>(values_t + c * kAttentionKeyTile, kAttentionKeyTile, own.levels,
                                               key_pairs, own.sums);
    for (int r = 0; r < Rows; ++r) {
      const __m512 value_scale = _mm512_set1_ps(tile.value_scales[c + r]);
      float* output = scratch.output_t + (c + r) * Q;
#pragma GCC unroll 3
      for (int v = 0; v < Vectors; ++v) {
        const int64_t lane = Vec::kLanes * v;
        const __m512 sums = _mm512_cvtepi32_ps(_mm512_loadu_si512(own.sums + r * Q + lane));
        const __m512 rescaled = _mm512_mul_ps(_mm512_loadu_ps(output + lane), _mm512_loadu_ps(own.correction + lane));
        const __m512 scale = _mm512_mul_ps(value_scale, _mm512_loadu_ps(own.block_scale + lane));
        _mm512_storeu_ps(output + lane, _mm512_fmadd_ps(sums, scale, rescaled));
      }
    }
  }

  template <int Vectors>
  static void products(const AttentionTile& tile, int64_t first_key, int64_t n_keys, const AttentionScratch& scratch,
                       const Own& own, const void* next_keys, int64_t next_key_bytes) {
    const int64_t d = tile.head_dim;
    const int16_t* values_t = tile.int16_values_t + first_key * d;
    const int64_t key_pairs = (n_keys + 1) / 2;
    const int64_t full_dims = d / kRows * kRows;
    for (int64_t c = 0; c < full_dims; c += kRows) {
      if (next_keys != nullptr) FloatTile::prefetch_fraction(next_keys, next_key_bytes, c, c + kRows, full_dims);
      product<kRows, Vectors>(tile, values_t, c, key_pairs, scratch, own);
    }
    for (int64_t c = full_dims; c < d; c += kTailRows) product<kTailRows, Vectors>(tile, values_t, c, key_pairs, scratch, own);
  }

  // FloatOutputs::block's contract.
  static void block(const AttentionTile& tile, int64_t first_key, int64_t n_keys, const AttentionScratch& scratch,
                    int64_t lanes, const void* next_keys, int64_t next_key_bytes) {
    const Own own(scratch);
    for (int64_t lane = 0; lane < lanes; lane += Vec::kLanes) softmax_step(scratch, own, lane, n_keys);
    with_query_vectors(lanes, [&](auto vectors) {
      products<decltype(vectors)::value>(tile, first_key, n_keys, scratch, own, next_keys, next_key_bytes);
    });
  }
};

void attend_tile_int16(const AttentionTile& tile, const AttentionScratch& scratch) {
  FloatTile::attend<Int16Scores, Int16Outputs>(tile, scratch);
}

}  // namespace

void add_int16_vision_attention(IsaOps& table) { table.vision_tile_fast = attend_tile_int16; }

}  // namespace qvl::avx512
