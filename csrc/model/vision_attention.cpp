#include "model/vision_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "common/isa.h"

namespace qvl {

namespace {

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

}  // namespace

int64_t AttentionScratch::floats_needed(int64_t head_dim) {
  return 2 * kAttentionQueryTile * head_dim + kAttentionQueryTile * kAttentionKeyTile + 2 * kAttentionQueryTile;
}

AttentionScratch::AttentionScratch(float* base, int64_t head_dim)
    : queries_t(base),
      scores_t(queries_t + kAttentionQueryTile * head_dim),
      output_t(scores_t + kAttentionQueryTile * kAttentionKeyTile),
      row_max(output_t + kAttentionQueryTile * head_dim),
      row_sum(row_max + kAttentionQueryTile) {}

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
  thread_scratch_.resize(n_threads);
  for (auto& scratch : thread_scratch_) scratch.resize(AttentionScratch::floats_needed(head_dim_));
}

// Copies each head's keys and values out of the strided rows into contiguous memory (rows
// `row_stride` apart alias a few cache sets; packed blocks do not), the values transposed in blocks of
// [head_dim][kAttentionKeyTile] so the output product reads one row of values per dimension. Padding
// stays zero from construction.
void SegmentedAttention::pack_keys_and_values(const float* k, const float* v, int64_t row_stride, ThreadPool& pool) {
  pool.run(n_heads_, [&](int64_t head, int) {
    float* head_keys = keys_.data() + head * head_dim_ * padded_keys_;
    float* head_values = values_t_.data() + head * head_dim_ * padded_keys_;
    for (size_t s = 0; s + 1 < bounds_.size(); ++s) {
      for (int64_t row = bounds_[s]; row < bounds_[s + 1]; ++row) {
        const float* key = k + row * row_stride + head * head_dim_;
        const float* value = v + row * row_stride + head * head_dim_;
        int64_t column = key_columns_[s] + (row - bounds_[s]);
        std::copy(key, key + head_dim_, head_keys + column * head_dim_);
        float* block = head_values + (column / kAttentionKeyTile) * head_dim_ * kAttentionKeyTile;
        for (int64_t c = 0; c < head_dim_; ++c) block[c * kAttentionKeyTile + column % kAttentionKeyTile] = value[c];
      }
    }
  });
}

void SegmentedAttention::run(const float* q, const float* k, const float* v, int64_t row_stride, float* out,
                             ThreadPool& pool) {
  if (static_cast<size_t>(pool.size()) > thread_scratch_.size()) {
    throw std::invalid_argument("attention: the pool has more threads than scratch was made for");
  }
  pack_keys_and_values(k, v, row_stride, pool);
  const Isa isa = active_isa();
  const int64_t n_blocks = static_cast<int64_t>(blocks_.size());
  pool.run(n_blocks * n_heads_, [&](int64_t task, int thread) {
    const QueryBlock& block = blocks_[task / n_heads_];
    const int64_t head = task % n_heads_;
    const int64_t segment_start = bounds_[block.segment];
    AttentionTile tile;
    tile.q = q + block.first_row * row_stride + head * head_dim_;
    tile.n_queries = block.n_rows;
    const int64_t first_key = head * padded_keys_ + key_columns_[block.segment];
    tile.keys = keys_.data() + first_key * head_dim_;
    tile.values_t = values_t_.data() + first_key * head_dim_;
    tile.n_keys = bounds_[block.segment + 1] - segment_start;
    tile.row_stride = row_stride;
    tile.head_dim = head_dim_;
    tile.out = out + block.first_row * row_stride + head * head_dim_;
    AttentionScratch scratch(thread_scratch_[thread].data(), head_dim_);
#if defined(QVL_HAVE_AVX512_BUILD)
    if (isa == Isa::Avx512) {
      avx512::attend_tile(tile, scratch);
      return;
    }
#endif
#if defined(QVL_HAVE_AVX2_BUILD)
    if (runs_avx2_kernels(isa)) {
      avx2::attend_tile(tile, scratch);
      return;
    }
#endif
    attend_tile_scalar(tile, scratch);
  });
}

// The reference tile routine: for each block of keys, scores = k q^T, then the online softmax update
// (rescale each query's running output and sum by exp(old max - new max)), then output += v^T p.
void attend_tile_scalar(const AttentionTile& tile, const AttentionScratch& scratch) {
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

}  // namespace qvl
