// The ViT's self-attention over variable-length segments: every segment (one frame of one image or
// video) attends only to itself, i.e. a block-diagonal mask over the concatenated patches. Each head of
// each segment is computed in blocks of queries against blocks of keys with an online softmax, so no
// [seq, seq] score matrix is ever stored; scratch is allocated once and reused by every layer.
// Under Precision::Int8 on the avx512 path the products run on 8-bit integers (VNNI); every other
// precision and ISA (scalar, avx2 under int8 too) computes in float.
#pragma once
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/kernels.h"

namespace qvl {

// Tile sizes shared by every ISA's tile routine: 48 queries (two strips of the AVX2 micro-kernel's 24,
// three AVX-512 vectors) against 64 keys (sixteen AVX2 4-row steps, eight AVX-512 8-row steps) keep a
// tile's working set near L1.
constexpr int64_t kAttentionQueryTile = 48;
constexpr int64_t kAttentionKeyTile = 64;

class SegmentedAttention {
 public:
  // segment_bounds: 0 = b0 < b1 < ... < bk = number of rows (cu_seqlens). n_threads: the pool's size.
  SegmentedAttention(int64_t n_heads, int64_t head_dim, std::vector<int64_t> segment_bounds, int n_threads);

  // q, k, v, out: rows of n_heads * head_dim floats (head after head), row i at base + i * row_stride.
  // out = softmax(q k^T / sqrt(head_dim)) v per head and segment. Exact and Fast compute in float;
  // Int8 runs the int8 attention where the avx512 path is active and the float one elsewhere.
  void run(const float* q, const float* k, const float* v, int64_t row_stride, float* out, Precision precision,
           ThreadPool& pool);

 private:
  struct QueryBlock {
    int64_t segment;
    int64_t first_row;
    int64_t n_rows;
  };
  void pack_keys_and_values(const float* k, const float* v, int64_t row_stride, ThreadPool& pool);
  void run_float(const float* q, int64_t row_stride, float* out, ThreadPool& pool);
#if defined(QVL_HAVE_AVX512_BUILD)
  void pack_int8_keys_and_values(const float* k, const float* v, int64_t row_stride, ThreadPool& pool);
  void run_int8(const float* q, int64_t row_stride, float* out, ThreadPool& pool);
#endif

  int64_t n_heads_;
  int64_t head_dim_;
  std::vector<int64_t> bounds_;
  std::vector<int64_t> key_columns_;  // where each segment starts among a head's padded keys
  int64_t padded_keys_ = 0;           // all segments' keys, each padded to a multiple of the key tile
  std::vector<float> keys_;           // per head: [padded key][head_dim]
  std::vector<float> values_t_;       // per head: blocks of kAttentionKeyTile keys, each [head_dim][tile]
  std::vector<QueryBlock> blocks_;
  std::vector<std::vector<float>> thread_scratch_;  // big enough for either the float or the int8 scratch
  // The int8 attention's keys and values, laid out as keys_ and values_t_, allocated on its first run
  // (never without an avx512 build; declared regardless, so the class layout does not depend on it).
  std::vector<int8_t> int8_keys_;
  std::vector<float> key_scales_;     // per head: [padded key]
  std::vector<int32_t> key_offsets_;  // per head: [padded key], 128 * the key's sum of int8 elements
  std::vector<int8_t> int8_values_t_;
  std::vector<float> value_scales_;   // per head: [segment][head_dim]
};

// One head, one block of at most kAttentionQueryTile queries, all keys of their segment: what a
// per-ISA tile routine computes. Everything is worked on transposed (queries along the vector lanes),
// so the score and output products are the same small matrix product and the softmax needs no
// horizontal reductions.
struct AttentionTile {
  const float* q;         // first query of the block at this head's offset; rows row_stride apart
  int64_t n_queries;
  const float* keys;      // the segment's keys of this head, [key][head_dim], zero past n_keys
  // The segment's values of this head in blocks of kAttentionKeyTile keys, each block transposed to
  // [head_dim][kAttentionKeyTile]; zero past n_keys.
  const float* values_t;
  int64_t n_keys;
  int64_t row_stride;
  int64_t head_dim;
  float* out;             // first output row at this head's offset; rows row_stride apart
};

// A thread's working memory for one tile: the scaled queries, one block of scores (probabilities
// after the softmax step), the running output, and every query's running softmax max and sum.
struct AttentionScratch {
  static int64_t floats_needed(int64_t head_dim);
  explicit AttentionScratch(float* base, int64_t head_dim);
  float* queries_t;  // [head_dim][kAttentionQueryTile]
  float* scores_t;   // [kAttentionKeyTile][kAttentionQueryTile]
  float* output_t;   // [head_dim][kAttentionQueryTile]
  float* row_max;    // [kAttentionQueryTile]
  float* row_sum;    // [kAttentionQueryTile]
};

void attend_tile_scalar(const AttentionTile& tile, const AttentionScratch& scratch);
#if defined(QVL_HAVE_AVX2_BUILD)
namespace avx2 {
// Requires head_dim % 4 == 0 (the encoder's rotary embedding already does).
void attend_tile(const AttentionTile& tile, const AttentionScratch& scratch);
}  // namespace avx2
#endif
#if defined(QVL_HAVE_AVX512_BUILD)
namespace avx512 {
// Requires head_dim % 4 == 0, as avx2::attend_tile.
void attend_tile(const AttentionTile& tile, const AttentionScratch& scratch);
}  // namespace avx512

// The int8 attention (avx512 only: it is built on VNNI's u8 x s8 dot product, vpdpbusd). Keys are
// int8 with one scale per key, queries likewise per query (stored + 128, unsigned; the key offsets
// take the 128 back out), so a score is scale_q * scale_k * (integer dot). The softmax runs in float;
// its probabilities, relative to each key block's max (so in [0, 1]), are rounded to u8 in units of
// 1/255 and values are int8 with one scale per channel over the segment, so the output product is
// integer too. The normalising sums add up the same rounded probabilities, so the rounding does not bias the
// weights' total.
struct Int8AttentionTile {
  const float* q;               // as AttentionTile: quantized by the tile routine
  int64_t n_queries;
  const int8_t* keys;           // [key][head_dim], zero past n_keys
  const float* key_scales;      // [key]
  const int32_t* key_offsets;   // [key]: 128 * sum of the key's int8 elements
  const int8_t* values_t;       // blocks of kAttentionKeyTile keys, each [head_dim][kAttentionKeyTile]
  const float* value_scales;    // [head_dim], for this segment
  int64_t n_keys;
  int64_t row_stride;
  int64_t head_dim;
  float* out;
};

// The int8 tile routine's working memory, carved out of a thread's float scratch: floats first, then
// the byte operands of the products, each laid out [depth / 4][kAttentionQueryTile][4] (4 consecutive
// dimensions or keys of one query per 32-bit lane).
struct Int8AttentionScratch {
  static int64_t floats_needed(int64_t head_dim);
  explicit Int8AttentionScratch(float* base, int64_t head_dim);
  float* scores_t;         // [kAttentionKeyTile][kAttentionQueryTile]
  float* output_t;         // [head_dim][kAttentionQueryTile], in units of value scale / 255
  float* query_scales;     // [kAttentionQueryTile], times log2(e) / sqrt(head_dim): scores are in log2 units
  float* row_max;          // [kAttentionQueryTile]
  float* row_sum;          // [kAttentionQueryTile], in units of 1 / 255
  float* correction;       // [kAttentionQueryTile], this key block's rescale of the running output
  float* block_scale;      // [kAttentionQueryTile], this key block's probabilities to the running scale
  uint8_t* queries;        // [head_dim / 4][kAttentionQueryTile][4]: int8 query + 128
  uint8_t* probabilities;  // [kAttentionKeyTile / 4][kAttentionQueryTile][4]: round(255 p)
};

namespace avx512 {
// Requires head_dim % 4 == 0.
void attend_tile_int8(const Int8AttentionTile& tile, const Int8AttentionScratch& scratch);
}  // namespace avx512
#endif

}  // namespace qvl
