// The decoder's causal attention: the driver that hands query groups to the active ISA's kernel, and
// the scalar reference kernel (scores, softmax, weighted sum of values, one query at a time).
#include "kernels/strict_fp.h"

#include "ops/causal_attention.h"

#include <algorithm>
#include <cmath>

#include "ops/op_table.h"

namespace qvl {
namespace scalar {
namespace {

void attend_one_query(const float* query, const float* keys, const float* values, int64_t n_keys, int64_t hd,
                      float scale, float* scores, float* out) {
  float max_score = -INFINITY;
  for (int64_t t = 0; t < n_keys; ++t) {
    float score = 0.0f;
    for (int64_t d = 0; d < hd; ++d) score += query[d] * keys[t * hd + d];
    scores[t] = score * scale;
    max_score = std::max(max_score, scores[t]);
  }
  float sum = 0.0f;
  for (int64_t t = 0; t < n_keys; ++t) {
    scores[t] = std::exp(scores[t] - max_score);
    sum += scores[t];
  }
  std::fill(out, out + hd, 0.0f);
  for (int64_t t = 0; t < n_keys; ++t) {
    for (int64_t d = 0; d < hd; ++d) out[d] += scores[t] * values[t * hd + d];
  }
  const float inverse = 1.0f / sum;
  for (int64_t d = 0; d < hd; ++d) out[d] *= inverse;
}

// The reference kernel, one query after the other (its table entry takes one query at a time).
void attend_query_group(const QueryGroup& g, const float* keys, const float* values, float scale, float* scratch) {
  for (int64_t p = 0; p < g.n_positions; ++p) {
    for (int64_t head = 0; head < g.heads; ++head) {
      const int64_t offset = p * g.row_stride + head * g.head_dim;
      attend_one_query(g.q + offset, keys, values, g.first_keys + p, g.head_dim, scale, scratch, g.out + offset);
    }
  }
}

}  // namespace

void add_causal_attention(IsaOps& table) {
  table.causal_group = attend_query_group;
  table.causal_group_lanes = 1;
}

}  // namespace scalar

int64_t causal_attention_scratch_floats(int64_t capacity, int64_t head_dim) {
  // A group's scores and its transposed queries, for the widest kernel.
  return (capacity + head_dim) * kMaxCausalGroupLanes;
}

void causal_attention(const float* q, int64_t n, int64_t first, KvCache& cache, int64_t layer, const AttentionShape& shape,
                      float* out, float* scratch, ThreadPool& pool) {
  const IsaOps& ops = isa_ops(active_isa());
  const int64_t hd = shape.head_dim;
  const int64_t width = shape.n_heads * hd;
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t thread_floats = causal_attention_scratch_floats(cache.capacity(), hd);
  // Tasks: (block of positions, key/value head, slice of its query heads). A task's queries fill the
  // kernel's lanes: the whole group at as many positions as fit, or a slice of a group too wide for them.
  const int64_t heads = std::min(group, ops.causal_group_lanes);
  const int64_t slices = (group + heads - 1) / heads;
  const int64_t positions = ops.causal_group_lanes / heads;
  const int64_t n_blocks = (n + positions - 1) / positions;
  pool.run(n_blocks * shape.n_kv_heads * slices, [&](int64_t task, int thread) {
    const int64_t slice = task % slices, kv_head = task / slices % shape.n_kv_heads;
    const int64_t first_row = task / slices / shape.n_kv_heads * positions;
    const int64_t first_head = slice * heads;
    const int64_t offset = first_row * width + (kv_head * group + first_head) * hd;
    const QueryGroup queries{q + offset, out + offset, width, std::min(positions, n - first_row),
                             std::min(heads, group - first_head), hd, first + first_row + 1};
    ops.causal_group(queries, cache.keys(layer, kv_head), cache.values(layer, kv_head), scale,
                     scratch + static_cast<int64_t>(thread) * thread_floats);
  });
}

}  // namespace qvl
