// The units of work the attention kernels of each ISA take (op_table.h), and their scratch layouts.
// The drivers that cut attention into these units: causal_attention.cpp (decoder) and
// vision_attention.cpp (ViT).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace qvl {

// ---- The decoder's causal attention ----

// The queries a causal kernel attends together: the `heads` query heads sharing one key/value head
// at n_positions consecutive positions (heads * n_positions <= the kernel's lanes). Position p sees
// keys [0, first_keys + p).
struct QueryGroup {
  const float* q;        // first position's first head of the group; positions row_stride floats apart
  float* out;            // laid out as q
  int64_t row_stride;
  int64_t n_positions;
  int64_t heads;
  int64_t head_dim;
  int64_t first_keys;
};

// The most query lanes any ISA's causal kernel takes (scratch is sized for it).
constexpr int64_t kMaxCausalGroupLanes = 48;

// ---- The ViT's attention over segments ----

// Tile sizes shared by every ISA's tile routine: 48 queries (two strips of the AVX2 micro-kernel's 24,
// three AVX-512 vectors) against 64 keys (sixteen AVX2 4-row steps, eight AVX-512 8-row steps) keep a
// tile's working set near L1.
constexpr int64_t kAttentionQueryTile = 48;
constexpr int64_t kAttentionKeyTile = 64;

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
  int64_t head_dim;       // a multiple of 4
  float* out;             // first output row at this head's offset; rows row_stride apart
  // For a tile routine whose products run on 16-bit integers (Fast on AVX-512,
  // vision_attention_int16_avx512.cpp), null otherwise: the keys rounded to int16 levels with one scale
  // per key, key = scale * levels, |levels| <= int16_score_levels(head_dim), laid out as keys; the
  // values with one scale per channel over the segment, |levels| <= int16_output_levels(), laid out as
  // values_t.
  const int16_t* int16_keys = nullptr;
  const float* key_scales = nullptr;
  const int16_t* int16_values_t = nullptr;
  const float* value_scales = nullptr;  // [head_dim], this segment's
};

// The largest level of a query or key element in an int16 score product: head_dim products of two
// levels, summed in an int32, cannot overflow (5181 at head_dim 80, 5792 at 64).
inline int32_t int16_score_levels(int64_t head_dim) {
  return static_cast<int32_t>(std::min(32767.0, std::floor(std::sqrt(2147483647.0 / static_cast<double>(head_dim)))));
}
// The same for a probability or value element in an int16 output product over one key block (5792).
inline int32_t int16_output_levels() { return int16_score_levels(kAttentionKeyTile); }

// A thread's working memory for one tile: the scaled queries, one block of scores (probabilities
// after the softmax step), the running output, and every query's running softmax max and sum; and
// room a tile routine may use for its own (the int16 tile's probability levels and per-block factors).
struct AttentionScratch {
  static constexpr int64_t kOwnFloats = 2048;
  static int64_t floats_needed(int64_t head_dim);
  explicit AttentionScratch(float* base, int64_t head_dim);
  float* queries_t;  // [head_dim][kAttentionQueryTile]
  float* scores_t;   // [kAttentionKeyTile][kAttentionQueryTile]
  float* output_t;   // [head_dim][kAttentionQueryTile]
  float* row_max;    // [kAttentionQueryTile]
  float* row_sum;    // [kAttentionQueryTile]
  float* own;        // [kOwnFloats]
};

// The int8 attention (Precision::Int8; avx512 only: it is built on VNNI's u8 x s8 dot product,
// vpdpbusd). Keys are int8 with one scale per key, queries likewise per query (stored + 128, unsigned;
// the key offsets take the 128 back out), so a score is scale_q * scale_k * (integer dot). The softmax
// runs in float; its probabilities, relative to each key block's max (so in [0, 1]), are rounded to u8
// in units of 1/255 and values are int8 with one scale per channel over the segment, so the output
// product is integer too. The normalising sums add up the same rounded probabilities, so the rounding
// does not bias the weights' total.
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
  int64_t head_dim;             // a multiple of 4
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
  int32_t* sums;           // [8][kAttentionQueryTile]: one register tile's integer sums
  uint8_t* queries;        // [head_dim / 4][kAttentionQueryTile][4]: int8 query + 128
  uint8_t* probabilities;  // [kAttentionKeyTile / 4][kAttentionQueryTile][4]: round(255 p)
};

}  // namespace qvl
