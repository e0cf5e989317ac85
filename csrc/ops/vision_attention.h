// The ViT's self-attention over variable-length segments: every segment (one frame of one image or
// video) attends only to itself, i.e. a block-diagonal mask over the concatenated patches. Each head of
// each segment is computed in blocks of queries against blocks of keys with an online softmax, so no
// [seq, seq] score matrix is ever stored; scratch is allocated once and reused by every layer.
// The tile routines that do the work are the op table's (op_table.h: vision_tile, vision_tile_fast,
// vision_tile_int8). Under Precision::Int8, where the ISA has an int8 tile routine (avx512), the products
// run on 8-bit integers (VNNI); under Fast, where the ISA has a tile of its own (avx512), both products
// run on 16-bit integers (VNNI) and the softmax in float; everything else computes in float.
#pragma once
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "common/precision.h"
#include "ops/attention_tiles.h"
#include "ops/op_table.h"

namespace qvl {

class SegmentedAttention {
 public:
  // segment_bounds: 0 = b0 < b1 < ... < bk = number of rows (cu_seqlens). n_threads: the pool's size.
  SegmentedAttention(int64_t n_heads, int64_t head_dim, std::vector<int64_t> segment_bounds, int n_threads);

  // q, k, v, out: rows of n_heads * head_dim floats (head after head), row i at base + i * row_stride.
  // out = softmax(q k^T / sqrt(head_dim)) v per head and segment. Exact computes in float; Fast and
  // Int8 run their ISA's tile where the active ISA has one and the float one elsewhere.
  void run(const float* q, const float* k, const float* v, int64_t row_stride, float* out, Precision precision,
           ThreadPool& pool);

 private:
  struct QueryBlock {
    int64_t segment;
    int64_t first_row;
    int64_t n_rows;
  };
  void channel_max_abs(const float* x, int64_t row_stride, int64_t s, float* max_abs) const;
  void pack_keys_and_values(const float* k, const float* v, int64_t row_stride, bool int16, ThreadPool& pool);
  template <typename TileFn>
  void for_each_tile(ThreadPool& pool, const TileFn& fn) const;
  template <typename Tile>
  void place(Tile& tile, const QueryBlock& block, int64_t head, const float* q, int64_t row_stride, float* out) const;
  // Every tile through attend_tile (the float routine or Fast's int16 one; int16: the tiles get the
  // int16 keys and values too).
  void run_tiles(const float* q, int64_t row_stride, float* out, VisionTileFn attend_tile, bool int16,
                 ThreadPool& pool);
  void pack_int8_keys_and_values(const float* k, const float* v, int64_t row_stride, ThreadPool& pool);
  void run_int8(const float* q, int64_t row_stride, float* out, ThreadPool& pool);

  int64_t n_heads_;
  int64_t head_dim_;
  std::vector<int64_t> bounds_;
  std::vector<int64_t> key_columns_;  // where each segment starts among a head's padded keys
  int64_t padded_keys_ = 0;           // all segments' keys, each padded to a multiple of the key tile
  std::vector<float> keys_;           // per head: [padded key][head_dim]
  std::vector<float> values_t_;       // per head: blocks of kAttentionKeyTile keys, each [head_dim][tile]
  // Fast's int16 keys and values (AttentionTile::int16_keys, int16_values_t), laid out as keys_ and
  // values_t_, allocated on its first run.
  std::vector<int16_t> int16_keys_;
  std::vector<float> int16_key_scales_;    // per head: [padded key]
  std::vector<int16_t> int16_values_t_;
  std::vector<float> int16_value_scales_;  // per head: [segment][head_dim]
  std::vector<QueryBlock> blocks_;
  std::vector<std::vector<float>> thread_scratch_;  // big enough for the float or the int8 scratch
  // The int8 attention's keys and values, laid out as keys_ and values_t_, allocated on its first run.
  std::vector<int8_t> int8_keys_;
  std::vector<float> key_scales_;     // per head: [padded key]
  std::vector<int32_t> key_offsets_;  // per head: [padded key], 128 * the key's sum of int8 elements
  std::vector<int8_t> int8_values_t_;
  std::vector<float> value_scales_;   // per head: [segment][head_dim]
};

}  // namespace qvl
