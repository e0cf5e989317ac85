#include "model/vision_encoder.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include "backend/backend.h"
#include "model/window_order.h"

namespace qvl {

namespace {

constexpr int64_t kChannels = 3;

int64_t checked_head_dim(const GgufFile& file, const VisionSpec& s) {
  const int64_t sizes[] = {s.hidden_size,         s.intermediate_size,  s.num_layers,
                           s.num_heads,           s.patch_size,         s.temporal_patch_size,
                           s.spatial_merge_size,  s.merger_hidden_size, s.out_hidden_size};
  if (*std::min_element(std::begin(sizes), std::end(sizes)) <= 0 || !(s.layer_norm_eps > 0.0f)) {
    throw ModelFormatError(file.path() + ": vision parameters must all be positive");
  }
  if (s.hidden_size % s.num_heads != 0 || (s.hidden_size / s.num_heads) % 4 != 0) {
    throw ModelFormatError(file.path() + ": vision width " + std::to_string(s.hidden_size) + " over " +
                           std::to_string(s.num_heads) + " heads does not give a head size that is a multiple of 4");
  }
  if (static_cast<int64_t>(s.patch_embed_names.size()) != s.temporal_patch_size) {
    throw std::invalid_argument("vision spec: patch_embed_names needs one tensor per temporal patch slice");
  }
  if (s.deepstack_layers.size() != s.deepstack_mergers.size()) {
    throw std::invalid_argument("vision spec: one deepstack merger per deepstack layer");
  }
  for (int64_t layer : s.full_attention_layers) {
    if (layer < 0 || layer >= s.num_layers) throw std::invalid_argument("vision spec: full-attention layer out of range");
  }
  for (int64_t layer : s.deepstack_layers) {
    if (layer < 0 || layer >= s.num_layers) throw std::invalid_argument("vision spec: deepstack layer out of range");
  }
  if (s.window_size < 0 || (s.window_size > 0 && s.window_size % (s.patch_size * s.spatial_merge_size) != 0)) {
    throw std::invalid_argument("vision spec: window_size must be a multiple of patch_size x spatial_merge_size");
  }
  return s.hidden_size / s.num_heads;
}

// cu_seqlens of the reference: every frame of every grid is its own attention segment.
std::vector<int64_t> frame_bounds(const std::vector<GridThw>& grids) {
  std::vector<int64_t> bounds{0};
  for (const GridThw& grid : grids) {
    for (int64_t frame = 0; frame < grid.t; ++frame) bounds.push_back(bounds.back() + grid.h * grid.w);
  }
  return bounds;
}

std::string block_prefix(int64_t index) { return "v.blk." + std::to_string(index) + "."; }

}  // namespace

// Everything one encode call writes, allocated once per call. The rows of x are in attention order:
// the preprocessor's order, or window by window when the spec has windows (`order`). `work` holds q, k,
// v and the attention context side by side during attention and is reused for the MLP's wide
// activations afterwards.
struct VisionEncoder::Activations {
  Activations(int64_t n_patches, const VisionSpec& s, int64_t head_dim, const std::vector<GridThw>& grids,
              int n_threads)
      : n(n_patches),
        order(s.window_size > 0 ? window_order(grids, s.spatial_merge_size,
                                               s.window_size / s.patch_size / s.spatial_merge_size)
                                : WindowOrder{}),
        x(static_cast<size_t>(n * s.hidden_size)),
        normed(x.size()),
        work(static_cast<size_t>(n * std::max(4 * s.hidden_size, mlp_width(s)))),
        q(work.data()),
        k(q + n * s.hidden_size),
        v(k + n * s.hidden_size),
        context(v + n * s.hidden_size),
        rope(head_dim, attention_positions(grids, s.spatial_merge_size), s.rope_theta),
        frames(s.num_heads, head_dim, frame_bounds(grids), n_threads) {
    if (s.window_size > 0) windows.emplace(s.num_heads, head_dim, order.window_bounds, n_threads);
  }

  static int64_t mlp_width(const VisionSpec& s) {
    return s.mlp == VisionMlpKind::SwiGlu ? 2 * s.intermediate_size : s.intermediate_size;
  }

  bool reordered() const { return !order.token_order.empty(); }

  std::vector<PatchPosition> attention_positions(const std::vector<GridThw>& grids, int64_t merge) const {
    std::vector<PatchPosition> positions = patch_positions(grids, merge);
    if (order.token_order.empty()) return positions;
    const int64_t unit = merge * merge;
    std::vector<PatchPosition> reordered(positions.size());
    for (size_t j = 0; j < order.token_order.size(); ++j) {
      std::copy_n(positions.begin() + order.token_order[j] * unit, unit, reordered.begin() + j * unit);
    }
    return reordered;
  }

  int64_t n;
  WindowOrder order;          // empty without windows
  std::vector<float> x;       // [n][hidden] the residual stream, in attention order
  std::vector<float> normed;  // [n][hidden] a norm's output, then a projection's output
  std::vector<float> work;
  float* q;
  float* k;
  float* v;
  float* context;
  VisionRope rope;
  SegmentedAttention frames;                  // each frame attends to itself
  std::optional<SegmentedAttention> windows;  // each window attends to itself
};

VisionEncoder::VisionEncoder(std::shared_ptr<GgufFile> file, const VisionSpec& spec, std::shared_ptr<ThreadPool> pool)
    : file_(std::move(file)),
      spec_(spec),
      pool_(std::move(pool)),
      head_dim_(checked_head_dim(*file_, spec)),
      merger_(*file_, spec.merger, spec.hidden_size, spec.spatial_merge_size, spec.merger_hidden_size,
              spec.out_hidden_size) {
  if (!pool_) throw std::invalid_argument("VisionEncoder needs a thread pool");
  load_patch_embedding();
  load_position_grid();
  for (int64_t i = 0; i < spec_.num_layers; ++i) blocks_.push_back(load_block(i));
  if (file_->find_tensor(block_prefix(spec_.num_layers) + "ln1.weight") != nullptr) {
    throw ModelFormatError(file_->path() + ": the file has more than the " + std::to_string(spec_.num_layers) +
                           " vision blocks the parameters name");
  }
  windowed_layer_.assign(static_cast<size_t>(spec_.num_layers), spec_.window_size > 0);
  for (int64_t layer : spec_.full_attention_layers) windowed_layer_[layer] = false;
  deepstack_tap_of_layer_.assign(static_cast<size_t>(spec_.num_layers), -1);
  for (size_t tap = 0; tap < spec_.deepstack_layers.size(); ++tap) {
    deepstack_tap_of_layer_[spec_.deepstack_layers[tap]] = static_cast<int64_t>(tap);
    deepstack_mergers_.emplace_back(*file_, spec_.deepstack_mergers[tap], spec_.hidden_size, spec_.spatial_merge_size,
                                    spec_.merger_hidden_size, spec_.out_hidden_size);
  }
}

// The converter split the Conv3D kernel [hidden][channel][t][row][col] into one tensor per temporal
// slice t, each [hidden][channel][row][col] (spec.patch_embed_names). Interleaving them back gives one
// matrix whose columns follow the pixel rows' (channel, t, row, col).
void VisionEncoder::load_patch_embedding() {
  const int64_t p = spec_.patch_size;
  const int64_t frames = spec_.temporal_patch_size;
  const int64_t hidden = spec_.hidden_size;
  const int64_t slice_cols = kChannels * p * p;
  std::vector<float> slice(static_cast<size_t>(hidden * slice_cols));
  patch_embed_values_.assign(static_cast<size_t>(hidden * frames * slice_cols), 0.0f);
  for (int64_t t = 0; t < frames; ++t) {
    const std::string& name = spec_.patch_embed_names[t];
    const GgufTensorInfo& info = file_->tensor(name);
    const std::vector<int64_t> expected{p, p, kChannels, hidden};
    const bool float_type = info.type == GgmlType::F32 || info.type == GgmlType::F16 || info.type == GgmlType::BF16;
    if (info.dims != expected || !float_type) {
      throw ModelFormatError(file_->path() + ": tensor '" + name + "' should be F32/F16/BF16 of ggml shape [" +
                             std::to_string(p) + ", " + std::to_string(p) + ", 3, " + std::to_string(hidden) +
                             "], found " + type_name(info.type));
    }
    WeightView view{info.type, hidden, slice_cols, file_->tensor_data(info)};
    dequantize_rows(view, 0, hidden, slice.data());
    for (int64_t r = 0; r < hidden; ++r) {
      for (int64_t c = 0; c < kChannels; ++c) {
        const float* from = slice.data() + r * slice_cols + c * p * p;
        float* to = patch_embed_values_.data() + r * frames * slice_cols + (c * frames + t) * p * p;
        std::memcpy(to, from, static_cast<size_t>(p * p) * sizeof(float));
      }
    }
  }
  patch_embed_ = WeightView{GgmlType::F32, hidden, frames * slice_cols,
                            reinterpret_cast<const uint8_t*>(patch_embed_values_.data())};
  if (!spec_.patch_bias_name.empty()) patch_bias_ = f32_vector(*file_, spec_.patch_bias_name, hidden);
}

// A square grid of side x side learned positions, each `hidden` wide (ggml shape [hidden, side^2]).
void VisionEncoder::load_position_grid() {
  if (spec_.position_embed_name.empty()) return;
  const std::string& name = spec_.position_embed_name;
  const GgufTensorInfo& info = file_->tensor(name);
  const int64_t hidden = spec_.hidden_size;
  const int64_t entries = info.dims.size() == 2 && info.dims[0] == hidden ? info.dims[1] : 0;
  int64_t side = 0;
  while ((side + 1) * (side + 1) <= entries) ++side;
  const bool float_type = info.type == GgmlType::F32 || info.type == GgmlType::F16 || info.type == GgmlType::BF16;
  if (entries == 0 || side * side != entries || !float_type) {
    throw ModelFormatError(file_->path() + ": tensor '" + name + "' should be F32/F16/BF16 of ggml shape [" +
                           std::to_string(hidden) + ", side * side], found " + type_name(info.type));
  }
  const float* table = reinterpret_cast<const float*>(file_->tensor_data(info));
  if (info.type != GgmlType::F32) {
    position_values_.resize(static_cast<size_t>(entries * hidden));
    dequantize_rows(WeightView{info.type, entries, hidden, file_->tensor_data(info)}, 0, entries, position_values_.data());
    table = position_values_.data();
  }
  position_grid_.emplace(table, side, hidden);
}

VisionEncoder::Block VisionEncoder::load_block(int64_t index) const {
  const GgufFile& f = *file_;
  const std::string prefix = block_prefix(index);
  const int64_t d = spec_.hidden_size, wide = spec_.intermediate_size;
  Block block;
  block.norm1 = Norm::load(f, prefix + "ln1", spec_.block_norm, d, spec_.layer_norm_eps);
  if (spec_.fused_qkv) {
    const Linear qkv = Linear::load(f, prefix + "attn_qkv", 3 * d, d);
    block.q = qkv.rows(0, d);
    block.k = qkv.rows(d, d);
    block.v = qkv.rows(2 * d, d);
  } else {
    block.q = Linear::load(f, prefix + "attn_q", d, d);
    block.k = Linear::load(f, prefix + "attn_k", d, d);
    block.v = Linear::load(f, prefix + "attn_v", d, d);
  }
  block.out = Linear::load(f, prefix + "attn_out", d, d);
  block.norm2 = Norm::load(f, prefix + "ln2", spec_.block_norm, d, spec_.layer_norm_eps);
  if (spec_.mlp == VisionMlpKind::SwiGlu) block.gate = Linear::load(f, prefix + "ffn_gate", wide, d);
  block.up = Linear::load(f, prefix + "ffn_up", wide, d);
  block.down = Linear::load(f, prefix + "ffn_down", d, wide);
  return block;
}

void VisionEncoder::validate(int64_t n_patches, int64_t values_per_patch, const std::vector<GridThw>& grids) const {
  if (values_per_patch != patch_values()) {
    throw std::invalid_argument("pixel_values must have " + std::to_string(patch_values()) +
                                " values per patch row (3 x " + std::to_string(spec_.temporal_patch_size) + " x " +
                                std::to_string(spec_.patch_size) + " x " + std::to_string(spec_.patch_size) +
                                "), got " + std::to_string(values_per_patch));
  }
  if (grids.empty()) throw std::invalid_argument("grid_thw must name at least one image or video");
  const int64_t merge = spec_.spatial_merge_size;
  int64_t total = 0;
  for (size_t i = 0; i < grids.size(); ++i) {
    const GridThw& g = grids[i];
    const std::string which = "grid_thw[" + std::to_string(i) + "] = (" + std::to_string(g.t) + ", " +
                              std::to_string(g.h) + ", " + std::to_string(g.w) + ")";
    if (g.t <= 0 || g.h <= 0 || g.w <= 0) throw std::invalid_argument(which + " must be positive");
    if (g.h % merge != 0 || g.w % merge != 0) {
      throw std::invalid_argument(which + ": h and w must be multiples of the merge size " + std::to_string(merge));
    }
    if (g.h * g.w > (int64_t{1} << 24) || g.t > (int64_t{1} << 20)) throw std::invalid_argument(which + " is too large");
    total += g.t * g.h * g.w;
  }
  if (total != n_patches) {
    throw std::invalid_argument("grid_thw describes " + std::to_string(total) + " patches (sum of t*h*w) but pixel_values has " +
                                std::to_string(n_patches) + " rows");
  }
}

int64_t VisionEncoder::output_rows(int64_t n_patches, bool pre_merge) const {
  return pre_merge ? n_patches : n_patches / merger_.patches_per_token();
}

int64_t VisionEncoder::output_width(bool pre_merge) const {
  return pre_merge ? spec_.hidden_size : merger_.out_width();
}

void VisionEncoder::encode(const float* pixels, int64_t n_patches, const std::vector<GridThw>& grids, bool pre_merge,
                           Precision precision, const VisionOutputs& out) const {
  validate(n_patches, patch_values(), grids);
  const int64_t d = spec_.hidden_size;
  Activations a(n_patches, spec_, head_dim_, grids, pool_->size());
  embed_patches(pixels, grids, a, precision, out.dump);
  std::vector<float> restored(out.dump != nullptr ? a.x.size() : 0);  // a dump's copy in the preprocessor's order
  const int64_t tokens = output_rows(n_patches, false);
  for (int64_t i = 0; i < spec_.num_layers; ++i) {
    run_block(blocks_[i], i, a, precision);
    if (out.dump != nullptr) {
      restore_patch_order(a, restored.data());
      out.dump->record("block." + std::to_string(i), restored.data(), n_patches, d);
    }
    const int64_t tap = deepstack_tap_of_layer_[i];
    if (tap >= 0 && out.deepstack != nullptr && !pre_merge) {
      float* tap_out = out.deepstack + tap * tokens * merger_.out_width();
      merge(deepstack_mergers_[tap], a, precision, tap_out);
      record(out.dump, "deepstack." + std::to_string(tap), tap_out, tokens, merger_.out_width());
    }
  }
  if (pre_merge) {
    restore_patch_order(a, out.embeddings);
    return;
  }
  merge(merger_, a, precision, out.embeddings);
  record(out.dump, "merger", out.embeddings, tokens, merger_.out_width());
}

// x = pixels W^T (+ bias) (+ the interpolated learned positions): the Conv3D as a matrix product, then
// put into attention order.
void VisionEncoder::embed_patches(const float* pixels, const std::vector<GridThw>& grids, Activations& a,
                                  Precision precision, ActivationDump* dump) const {
  ThreadPool& pool = *pool_;
  const int64_t d = spec_.hidden_size;
  float* embedded = a.reordered() ? a.normed.data() : a.x.data();
  matmul(patch_embed_, pixels, a.n, embedded, precision, pool);
  if (patch_bias_ != nullptr) {
    parallel_rows(pool, a.n, [&](int64_t first, int64_t end) {
      for (int64_t i = first; i < end; ++i) add_in_place(embedded + i * d, patch_bias_, d);
    });
  }
  if (position_grid_) position_grid_->add_to(grids, spec_.spatial_merge_size, embedded);
  record(dump, "patch_embed", embedded, a.n, d);
  if (a.reordered()) gather_units(a.order.token_order, embedded, merger_.patches_per_token() * d, a.x.data());
}

void VisionEncoder::restore_patch_order(const Activations& a, float* out) const {
  if (a.reordered()) {
    scatter_units(a.order.token_order, a.x.data(), merger_.patches_per_token() * spec_.hidden_size, out);
  } else {
    std::memcpy(out, a.x.data(), a.x.size() * sizeof(float));
  }
}

// One merger on the current x: its tokens come out in attention order and go back to the preprocessor's.
void VisionEncoder::merge(const PatchMerger& merger, const Activations& a, Precision precision, float* out) const {
  if (!a.reordered()) {
    merger.forward(a.x.data(), a.n, out, precision, *pool_);
    return;
  }
  std::vector<float> merged(static_cast<size_t>(output_rows(a.n, false) * merger.out_width()));
  merger.forward(a.x.data(), a.n, merged.data(), precision, *pool_);
  scatter_units(a.order.token_order, merged.data(), merger.out_width(), out);
}

// x += attention(norm1(x)); x += mlp(norm2(x)).
void VisionEncoder::run_block(const Block& block, int64_t index, Activations& a, Precision precision) const {
  ThreadPool& pool = *pool_;
  const int64_t n = a.n;
  const int64_t d = spec_.hidden_size;
  float* x = a.x.data();
  float* normed = a.normed.data();
  auto add_normed_to_residual = [&]() {
    parallel_rows(pool, n, [&](int64_t first, int64_t end) {
      add_in_place(x + first * d, normed + first * d, (end - first) * d);
    });
  };

  block.norm1.forward(x, n, normed, pool);
  block.q.forward(normed, n, a.q, precision, pool);
  block.k.forward(normed, n, a.k, precision, pool);
  block.v.forward(normed, n, a.v, precision, pool);
  parallel_rows(pool, n, [&](int64_t first, int64_t end) {
    for (int64_t i = first; i < end; ++i) {
      a.rope.apply(a.q + i * d, i, spec_.num_heads);
      a.rope.apply(a.k + i * d, i, spec_.num_heads);
    }
  });
  SegmentedAttention& attention = windowed_layer_[index] ? *a.windows : a.frames;
  attention.run(a.q, a.k, a.v, d, a.context, precision, pool);
  block.out.forward(a.context, n, normed, precision, pool);
  add_normed_to_residual();

  block.norm2.forward(x, n, normed, pool);
  mlp(block, a, precision);
  add_normed_to_residual();
}

// normed = the block's MLP of normed, through the wide work buffer.
void VisionEncoder::mlp(const Block& block, Activations& a, Precision precision) const {
  ThreadPool& pool = *pool_;
  const int64_t n = a.n, wide = spec_.intermediate_size;
  float* hidden = a.work.data();
  block.up.forward(a.normed.data(), n, hidden, precision, pool);
  switch (spec_.mlp) {
    case VisionMlpKind::QuickGelu:
      parallel_rows(pool, n, [&](int64_t first, int64_t end) {
        quick_gelu_in_place(hidden + first * wide, (end - first) * wide);
      });
      break;
    case VisionMlpKind::GeluTanh:
      parallel_rows(pool, n, [&](int64_t first, int64_t end) {
        gelu_tanh_in_place(hidden + first * wide, (end - first) * wide);
      });
      break;
    case VisionMlpKind::SwiGlu: {
      float* gate = hidden + n * wide;
      block.gate.forward(a.normed.data(), n, gate, precision, pool);
      parallel_rows(pool, n, [&](int64_t first, int64_t end) {
        silu_mul_in_place(gate + first * wide, hidden + first * wide, (end - first) * wide);
      });
      hidden = gate;
      break;
    }
  }
  block.down.forward(hidden, n, a.normed.data(), precision, pool);
}

}  // namespace qvl
