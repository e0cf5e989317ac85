#include "kernels/strict_fp.h"

#include "ops/vision_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "ops/op_table.h"

namespace qvl {

namespace {

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// x to the nearest integer, ties to even (std::lrint's rounding), for |x| < 2^22, written so that the
// compiler vectorizes the loops it is in (it does not vectorize std::lrint).
inline int16_t nearest_int16(float x) {
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23: adding it leaves no fraction bits
  return static_cast<int16_t>((x + kShift) - kShift);
}

}  // namespace

int64_t AttentionScratch::floats_needed(int64_t head_dim) {
  return 2 * kAttentionQueryTile * head_dim + kAttentionQueryTile * kAttentionKeyTile + 2 * kAttentionQueryTile +
         kOwnFloats;
}

AttentionScratch::AttentionScratch(float* base, int64_t head_dim)
    : queries_t(base),
      scores_t(queries_t + kAttentionQueryTile * head_dim),
      output_t(scores_t + kAttentionQueryTile * kAttentionKeyTile),
      row_max(output_t + kAttentionQueryTile * head_dim),
      row_sum(row_max + kAttentionQueryTile),
      own(row_sum + kAttentionQueryTile) {}

int64_t Int8AttentionScratch::floats_needed(int64_t head_dim) {
  constexpr int64_t Q = kAttentionQueryTile;
  const int64_t float_part = Q * kAttentionKeyTile + Q * head_dim + 5 * Q + 8 * Q;
  const int64_t byte_part = Q * head_dim + Q * kAttentionKeyTile;
  return float_part + (byte_part + sizeof(float) - 1) / sizeof(float);
}

Int8AttentionScratch::Int8AttentionScratch(float* base, int64_t head_dim)
    : scores_t(base),
      output_t(scores_t + kAttentionQueryTile * kAttentionKeyTile),
      query_scales(output_t + kAttentionQueryTile * head_dim),
      row_max(query_scales + kAttentionQueryTile),
      row_sum(row_max + kAttentionQueryTile),
      correction(row_sum + kAttentionQueryTile),
      block_scale(correction + kAttentionQueryTile),
      sums(reinterpret_cast<int32_t*>(block_scale + kAttentionQueryTile)),
      queries(reinterpret_cast<uint8_t*>(sums + 8 * kAttentionQueryTile)),
      probabilities(queries + kAttentionQueryTile * head_dim) {}

SegmentedAttention::SegmentedAttention(int64_t n_heads, int64_t head_dim, std::vector<int64_t> segment_bounds,
                                       int n_threads)
    : n_heads_(n_heads), head_dim_(head_dim), bounds_(std::move(segment_bounds)) {
  if (bounds_.size() < 2 || bounds_.front() != 0) {
    throw std::invalid_argument("attention: segment bounds must start at 0 and hold at least one segment");
  }
  for (size_t s = 0; s + 1 < bounds_.size(); ++s) {
    int64_t length = bounds_[s + 1] - bounds_[s];
    if (length <= 0) throw std::invalid_argument("attention: empty segment " + std::to_string(s));
    key_columns_.push_back(padded_keys_);
    padded_keys_ += round_up(length, kAttentionKeyTile);
    for (int64_t first = bounds_[s]; first < bounds_[s + 1]; first += kAttentionQueryTile) {
      blocks_.push_back({static_cast<int64_t>(s), first, std::min(kAttentionQueryTile, bounds_[s + 1] - first)});
    }
  }
  keys_.assign(static_cast<size_t>(n_heads_ * head_dim_ * padded_keys_), 0.0f);
  values_t_.assign(keys_.size(), 0.0f);
  const int64_t scratch_floats =
      std::max(AttentionScratch::floats_needed(head_dim_), Int8AttentionScratch::floats_needed(head_dim_));
  thread_scratch_.resize(n_threads);
  for (auto& scratch : thread_scratch_) scratch.resize(scratch_floats);
}

// max_abs[c] = the largest |x[row * row_stride + c]| over segment s's rows, c < head_dim: one value
// channel's range over the segment, which its integer scale covers.
void SegmentedAttention::channel_max_abs(const float* x, int64_t row_stride, int64_t s, float* max_abs) const {
  std::fill(max_abs, max_abs + head_dim_, 0.0f);
  for (int64_t row = bounds_[s]; row < bounds_[s + 1]; ++row) {
    const float* value = x + row * row_stride;
    for (int64_t c = 0; c < head_dim_; ++c) max_abs[c] = std::max(max_abs[c], std::fabs(value[c]));
  }
}

// Copies each head's keys and values out of the strided rows into contiguous memory (rows
// `row_stride` apart alias a few cache sets; packed blocks do not), the values transposed in blocks of
// [head_dim][kAttentionKeyTile] so the output product reads one row of values per dimension. With
// int16, as int16 levels instead of floats (AttentionTile::int16_keys, int16_values_t). Padding stays
// zero from construction.
void SegmentedAttention::pack_keys_and_values(const float* k, const float* v, int64_t row_stride, bool int16,
                                              ThreadPool& pool) {
  const int64_t n_segments = static_cast<int64_t>(bounds_.size()) - 1;
  if (int16 && int16_keys_.empty()) {
    int16_keys_.assign(keys_.size(), 0);
    int16_key_scales_.assign(static_cast<size_t>(n_heads_ * padded_keys_), 0.0f);
    int16_values_t_.assign(keys_.size(), 0);
    int16_value_scales_.assign(static_cast<size_t>(n_heads_ * n_segments * head_dim_), 0.0f);
  }
  const float key_levels = static_cast<float>(int16_score_levels(head_dim_));
  const float value_levels = static_cast<float>(int16_output_levels());
  pool.run(n_heads_, [&](int64_t head, int) {
    const int64_t head_offset = head * head_dim_ * padded_keys_;
    std::vector<float> inverse_value_scales(int16 ? head_dim_ : 0);
    for (int64_t s = 0; s < n_segments; ++s) {
      if (int16) {  // one scale per channel over the segment
        float* value_scales = int16_value_scales_.data() + (head * n_segments + s) * head_dim_;
        channel_max_abs(v + head * head_dim_, row_stride, s, value_scales);
        for (int64_t c = 0; c < head_dim_; ++c) {
          inverse_value_scales[c] = value_scales[c] > 0.0f ? value_levels / value_scales[c] : 0.0f;
          value_scales[c] /= value_levels;
        }
      }
      for (int64_t row = bounds_[s]; row < bounds_[s + 1]; ++row) {
        const float* key = k + row * row_stride + head * head_dim_;
        const float* value = v + row * row_stride + head * head_dim_;
        const int64_t column = key_columns_[s] + (row - bounds_[s]);
        const int64_t value_offset = head_offset + (column / kAttentionKeyTile) * head_dim_ * kAttentionKeyTile +
                                     column % kAttentionKeyTile;
        if (int16) {
          const int64_t key_index = head * padded_keys_ + column;
          float max_abs = 0.0f;
          for (int64_t c = 0; c < head_dim_; ++c) max_abs = std::max(max_abs, std::fabs(key[c]));
          const float inverse = max_abs > 0.0f ? key_levels / max_abs : 0.0f;
          int16_t* levels = int16_keys_.data() + key_index * head_dim_;
          for (int64_t c = 0; c < head_dim_; ++c) levels[c] = nearest_int16(key[c] * inverse);
          int16_key_scales_[key_index] = max_abs / key_levels;
          for (int64_t c = 0; c < head_dim_; ++c) {
            int16_values_t_[value_offset + c * kAttentionKeyTile] =
                nearest_int16(value[c] * inverse_value_scales[c]);
          }
        } else {
          std::copy(key, key + head_dim_, keys_.data() + head_offset + column * head_dim_);
          for (int64_t c = 0; c < head_dim_; ++c) values_t_[value_offset + c * kAttentionKeyTile] = value[c];
        }
      }
    }
  });
}

void SegmentedAttention::run(const float* q, const float* k, const float* v, int64_t row_stride, float* out,
                             Precision precision, ThreadPool& pool) {
  if (static_cast<size_t>(pool.size()) > thread_scratch_.size()) {
    throw std::invalid_argument("attention: the pool has more threads than scratch was made for");
  }
  if (precision == Precision::Int8 && isa_ops(active_isa()).vision_tile_int8 != nullptr) {
    pack_int8_keys_and_values(k, v, row_stride, pool);
    run_int8(q, row_stride, out, pool);
    return;
  }
  const VisionTileFn fast_tile = isa_ops(active_isa()).vision_tile_fast;
  const bool int16 = precision == Precision::Fast && fast_tile != nullptr;
  pack_keys_and_values(k, v, row_stride, int16, pool);
  run_tiles(q, row_stride, out, int16 ? fast_tile : isa_ops(active_isa()).vision_tile, int16, pool);
}

// fn(block, head, first_key, thread) for every query block and head, on the pool; first_key is where
// the block's segment starts among the padded keys of all heads.
template <typename TileFn>
void SegmentedAttention::for_each_tile(ThreadPool& pool, const TileFn& fn) const {
  pool.run(static_cast<int64_t>(blocks_.size()) * n_heads_, [&](int64_t task, int thread) {
    const QueryBlock& block = blocks_[task / n_heads_];
    const int64_t head = task % n_heads_;
    fn(block, head, head * padded_keys_ + key_columns_[block.segment], thread);
  });
}

// The fields every tile format shares: where the block's queries and outputs start, its keys' count.
template <typename Tile>
void SegmentedAttention::place(Tile& tile, const QueryBlock& block, int64_t head, const float* q, int64_t row_stride,
                               float* out) const {
  const int64_t offset = block.first_row * row_stride + head * head_dim_;
  tile.q = q + offset;
  tile.n_queries = block.n_rows;
  tile.n_keys = bounds_[block.segment + 1] - bounds_[block.segment];
  tile.row_stride = row_stride;
  tile.head_dim = head_dim_;
  tile.out = out + offset;
}

void SegmentedAttention::run_tiles(const float* q, int64_t row_stride, float* out, VisionTileFn attend_tile,
                                   bool int16, ThreadPool& pool) {
  const int64_t n_segments = static_cast<int64_t>(bounds_.size()) - 1;
  for_each_tile(pool, [&](const QueryBlock& block, int64_t head, int64_t first_key, int thread) {
    AttentionTile tile;
    place(tile, block, head, q, row_stride, out);
    tile.keys = keys_.data() + first_key * head_dim_;
    tile.values_t = values_t_.data() + first_key * head_dim_;
    if (int16) {
      tile.int16_keys = int16_keys_.data() + first_key * head_dim_;
      tile.key_scales = int16_key_scales_.data() + first_key;
      tile.int16_values_t = int16_values_t_.data() + first_key * head_dim_;
      tile.value_scales = int16_value_scales_.data() + (head * n_segments + block.segment) * head_dim_;
    }
    attend_tile(tile, AttentionScratch(thread_scratch_[thread].data(), head_dim_));
  });
}

namespace {

// Symmetric 8-bit rounding: x = scale * q, |q| <= 127; an all-zero input gets scale 0.
float int8_scale(float max_abs) { return max_abs / 127.0f; }
int8_t to_int8(float x, float inverse_scale) { return static_cast<int8_t>(std::lrint(x * inverse_scale)); }
float inverse_of(float scale) { return scale > 0.0f ? 1.0f / scale : 0.0f; }

}  // namespace

// The int8 twin of pack_keys_and_values: each key rounded with its own scale, each value channel with
// one scale over its segment (a channel's range is what the output product has to cover). Buffers are
// made on the first int8 run; padding stays zero (a padded key scores 0, its value adds nothing).
void SegmentedAttention::pack_int8_keys_and_values(const float* k, const float* v, int64_t row_stride,
                                                   ThreadPool& pool) {
  const int64_t n_segments = static_cast<int64_t>(bounds_.size()) - 1;
  if (int8_keys_.empty()) {
    int8_keys_.assign(keys_.size(), 0);
    int8_values_t_.assign(keys_.size(), 0);
    key_scales_.assign(static_cast<size_t>(n_heads_ * padded_keys_), 0.0f);
    key_offsets_.assign(key_scales_.size(), 0);
    value_scales_.assign(static_cast<size_t>(n_heads_ * n_segments * head_dim_), 0.0f);
  }
  pool.run(n_heads_, [&](int64_t head, int) {
    int8_t* head_keys = int8_keys_.data() + head * head_dim_ * padded_keys_;
    int8_t* head_values = int8_values_t_.data() + head * head_dim_ * padded_keys_;
    std::vector<float> inverse_value_scales(head_dim_);
    for (int64_t s = 0; s < n_segments; ++s) {
      float* value_scales = value_scales_.data() + (head * n_segments + s) * head_dim_;
      channel_max_abs(v + head * head_dim_, row_stride, s, value_scales);
      for (int64_t c = 0; c < head_dim_; ++c) {
        value_scales[c] = int8_scale(value_scales[c]);
        inverse_value_scales[c] = inverse_of(value_scales[c]);
      }
      for (int64_t row = bounds_[s]; row < bounds_[s + 1]; ++row) {
        const float* key = k + row * row_stride + head * head_dim_;
        const float* value = v + row * row_stride + head * head_dim_;
        const int64_t column = key_columns_[s] + (row - bounds_[s]);
        float key_max = 0.0f;
        for (int64_t c = 0; c < head_dim_; ++c) key_max = std::max(key_max, std::fabs(key[c]));
        const float key_scale = int8_scale(key_max);
        const float inverse_key_scale = inverse_of(key_scale);
        int32_t key_sum = 0;
        for (int64_t c = 0; c < head_dim_; ++c) {
          const int8_t element = to_int8(key[c], inverse_key_scale);
          head_keys[column * head_dim_ + c] = element;
          key_sum += element;
        }
        key_scales_[head * padded_keys_ + column] = key_scale;
        key_offsets_[head * padded_keys_ + column] = 128 * key_sum;
        int8_t* block = head_values + (column / kAttentionKeyTile) * head_dim_ * kAttentionKeyTile;
        for (int64_t c = 0; c < head_dim_; ++c) {
          block[c * kAttentionKeyTile + column % kAttentionKeyTile] = to_int8(value[c], inverse_value_scales[c]);
        }
      }
    }
  });
}

void SegmentedAttention::run_int8(const float* q, int64_t row_stride, float* out, ThreadPool& pool) {
  const Int8VisionTileFn attend_tile = isa_ops(active_isa()).vision_tile_int8;
  const int64_t n_segments = static_cast<int64_t>(bounds_.size()) - 1;
  for_each_tile(pool, [&](const QueryBlock& block, int64_t head, int64_t first_key, int thread) {
    Int8AttentionTile tile;
    place(tile, block, head, q, row_stride, out);
    tile.keys = int8_keys_.data() + first_key * head_dim_;
    tile.key_scales = key_scales_.data() + first_key;
    tile.key_offsets = key_offsets_.data() + first_key;
    tile.values_t = int8_values_t_.data() + first_key * head_dim_;
    tile.value_scales = value_scales_.data() + (head * n_segments + block.segment) * head_dim_;
    attend_tile(tile, Int8AttentionScratch(thread_scratch_[thread].data(), head_dim_));
  });
}

namespace scalar {
namespace {

// The reference tile routine: for each block of keys, scores = k q^T, then the online softmax update
// (rescale each query's running output and sum by exp(old max - new max)), then output += v^T p.
void attend_tile(const AttentionTile& tile, const AttentionScratch& scratch) {
  constexpr int64_t Q = kAttentionQueryTile;
  const int64_t d = tile.head_dim;
  const int64_t n_q = tile.n_queries;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t i = 0; i < n_q; ++i) {
    for (int64_t c = 0; c < d; ++c) scratch.queries_t[c * Q + i] = tile.q[i * tile.row_stride + c] * scale;
    for (int64_t c = 0; c < d; ++c) scratch.output_t[c * Q + i] = 0.0f;
    scratch.row_max[i] = -std::numeric_limits<float>::infinity();
    scratch.row_sum[i] = 0.0f;
  }
  for (int64_t first_key = 0; first_key < tile.n_keys; first_key += kAttentionKeyTile) {
    const int64_t n_keys = std::min(kAttentionKeyTile, tile.n_keys - first_key);
    const float* keys = tile.keys + first_key * d;
    const float* values_t = tile.values_t + first_key * d;
    for (int64_t j = 0; j < n_keys; ++j) {
      for (int64_t i = 0; i < n_q; ++i) {
        float score = 0.0f;
        for (int64_t c = 0; c < d; ++c) score += keys[j * d + c] * scratch.queries_t[c * Q + i];
        scratch.scores_t[j * Q + i] = score;
      }
    }
    for (int64_t i = 0; i < n_q; ++i) {
      float new_max = scratch.row_max[i];
      for (int64_t j = 0; j < n_keys; ++j) new_max = std::max(new_max, scratch.scores_t[j * Q + i]);
      const float correction = std::exp(scratch.row_max[i] - new_max);
      float block_sum = 0.0f;
      for (int64_t j = 0; j < n_keys; ++j) {
        float p = std::exp(scratch.scores_t[j * Q + i] - new_max);
        scratch.scores_t[j * Q + i] = p;
        block_sum += p;
      }
      scratch.row_max[i] = new_max;
      scratch.row_sum[i] = scratch.row_sum[i] * correction + block_sum;
      for (int64_t c = 0; c < d; ++c) scratch.output_t[c * Q + i] *= correction;
    }
    for (int64_t c = 0; c < d; ++c) {
      for (int64_t j = 0; j < n_keys; ++j) {
        const float value = values_t[c * kAttentionKeyTile + j];
        for (int64_t i = 0; i < n_q; ++i) scratch.output_t[c * Q + i] += value * scratch.scores_t[j * Q + i];
      }
    }
  }
  for (int64_t i = 0; i < n_q; ++i) {
    const float inverse_sum = 1.0f / scratch.row_sum[i];
    for (int64_t c = 0; c < d; ++c) tile.out[i * tile.row_stride + c] = scratch.output_t[c * Q + i] * inverse_sum;
  }
}

}  // namespace

void add_vision_attention(IsaOps& table) { table.vision_tile = attend_tile; }

}  // namespace scalar
}  // namespace qvl
