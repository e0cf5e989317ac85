#include "model/vision_encoder.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "backend/backend.h"

namespace qvl {

namespace {

constexpr int64_t kChannels = 3;

int64_t checked_head_dim(const GgufFile& file, const VisionHyperParams& p) {
  const int64_t sizes[] = {p.hidden_size,         p.intermediate_size,  p.num_layers,
                           p.num_heads,           p.patch_size,         p.temporal_patch_size,
                           p.spatial_merge_size,  p.merger_hidden_size, p.out_hidden_size};
  if (*std::min_element(std::begin(sizes), std::end(sizes)) <= 0 || !(p.layer_norm_eps > 0.0f)) {
    throw ModelFormatError(file.path() + ": vision parameters must all be positive");
  }
  if (p.hidden_size % p.num_heads != 0 || (p.hidden_size / p.num_heads) % 4 != 0) {
    throw ModelFormatError(file.path() + ": vision width " + std::to_string(p.hidden_size) + " over " +
                           std::to_string(p.num_heads) + " heads does not give a head size that is a multiple of 4");
  }
  return p.hidden_size / p.num_heads;
}

// cu_seqlens of the reference: every frame of every grid is its own attention segment.
std::vector<int64_t> frame_bounds(const std::vector<GridThw>& grids) {
  std::vector<int64_t> bounds{0};
  for (const GridThw& grid : grids) {
    for (int64_t frame = 0; frame < grid.t; ++frame) bounds.push_back(bounds.back() + grid.h * grid.w);
  }
  return bounds;
}

}  // namespace

// Everything one encode call writes, allocated once per call. `work` holds q, k, v and the attention
// context side by side during attention and is reused for the MLP's wide activations afterwards.
struct VisionEncoder::Activations {
  Activations(int64_t n_patches, const VisionHyperParams& p, int64_t head_dim, const std::vector<GridThw>& grids,
              int n_threads)
      : n(n_patches),
        x(static_cast<size_t>(n * p.hidden_size)),
        normed(x.size()),
        work(static_cast<size_t>(n * std::max(4 * p.hidden_size, p.intermediate_size))),
        q(work.data()),
        k(q + n * p.hidden_size),
        v(k + n * p.hidden_size),
        context(v + n * p.hidden_size),
        mlp(work.data()),
        rope(head_dim, patch_positions(grids, p.spatial_merge_size)),
        attention(p.num_heads, head_dim, frame_bounds(grids), n_threads) {}

  int64_t n;
  std::vector<float> x;       // [n][hidden] the residual stream
  std::vector<float> normed;  // [n][hidden] LayerNorm output, then a projection's output
  std::vector<float> work;
  float* q;
  float* k;
  float* v;
  float* context;
  float* mlp;  // [n][intermediate]
  VisionRope rope;
  SegmentedAttention attention;
};

VisionEncoder::VisionEncoder(std::shared_ptr<GgufFile> file, const VisionHyperParams& params, ThreadPool* pool)
    : file_(std::move(file)),
      params_(params),
      pool_(pool),
      head_dim_(checked_head_dim(*file_, params)),
      merger_(*file_, params.hidden_size, params.spatial_merge_size, params.merger_hidden_size,
              params.out_hidden_size) {
  if (pool_ == nullptr) throw std::invalid_argument("VisionEncoder needs a thread pool");
  load_patch_embedding();
  for (int64_t i = 0; i < params_.num_layers; ++i) blocks_.push_back(load_block(i));
  if (file_->find_tensor("v.blk." + std::to_string(params_.num_layers) + ".ln1.weight") != nullptr) {
    throw ModelFormatError(file_->path() + ": the file has more than the " + std::to_string(params_.num_layers) +
                           " vision blocks the parameters name");
  }
}

// The converter split the Conv3D kernel [hidden][channel][t][row][col] into one tensor per temporal
// slice t, each [hidden][channel][row][col] (`v.patch_embd.weight`, `v.patch_embd.weight.1`, ...).
// Interleaving them back gives one matrix whose columns follow the pixel rows' (channel, t, row, col).
void VisionEncoder::load_patch_embedding() {
  const int64_t p = params_.patch_size;
  const int64_t frames = params_.temporal_patch_size;
  const int64_t hidden = params_.hidden_size;
  const int64_t slice_cols = kChannels * p * p;
  std::vector<float> slice(static_cast<size_t>(hidden * slice_cols));
  patch_embed_values_.assign(static_cast<size_t>(hidden * frames * slice_cols), 0.0f);
  for (int64_t t = 0; t < frames; ++t) {
    const std::string name = t == 0 ? "v.patch_embd.weight" : "v.patch_embd.weight." + std::to_string(t);
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
}

VisionEncoder::Block VisionEncoder::load_block(int64_t index) const {
  const GgufFile& f = *file_;
  const std::string prefix = "v.blk." + std::to_string(index) + ".";
  const int64_t d = params_.hidden_size;
  Block block;
  block.norm1_weight = f32_vector(f, prefix + "ln1.weight", d);
  block.norm1_bias = f32_vector(f, prefix + "ln1.bias", d);
  block.q = Linear::load(f, prefix + "attn_q", d, d);
  block.k = Linear::load(f, prefix + "attn_k", d, d);
  block.v = Linear::load(f, prefix + "attn_v", d, d);
  block.out = Linear::load(f, prefix + "attn_out", d, d);
  block.norm2_weight = f32_vector(f, prefix + "ln2.weight", d);
  block.norm2_bias = f32_vector(f, prefix + "ln2.bias", d);
  block.up = Linear::load(f, prefix + "ffn_up", params_.intermediate_size, d);
  block.down = Linear::load(f, prefix + "ffn_down", d, params_.intermediate_size);
  return block;
}

void VisionEncoder::validate(int64_t n_patches, int64_t values_per_patch, const std::vector<GridThw>& grids) const {
  if (values_per_patch != patch_values()) {
    throw std::invalid_argument("pixel_values must have " + std::to_string(patch_values()) +
                                " values per patch row (3 x " + std::to_string(params_.temporal_patch_size) + " x " +
                                std::to_string(params_.patch_size) + " x " + std::to_string(params_.patch_size) +
                                "), got " + std::to_string(values_per_patch));
  }
  if (grids.empty()) throw std::invalid_argument("grid_thw must name at least one image or video");
  const int64_t merge = params_.spatial_merge_size;
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
  return pre_merge ? params_.hidden_size : merger_.out_width();
}

void VisionEncoder::encode(const float* pixels, int64_t n_patches, const std::vector<GridThw>& grids, bool pre_merge,
                           Precision precision, float* out) const {
  validate(n_patches, patch_values(), grids);
  ThreadPool& pool = *pool_;
  Activations a(n_patches, params_, head_dim_, grids, pool.size());
  matmul(patch_embed_, pixels, n_patches, a.x.data(), precision, pool);  // the Conv3D has no bias
  for (const Block& block : blocks_) run_block(block, a, precision);
  if (pre_merge) {
    std::memcpy(out, a.x.data(), a.x.size() * sizeof(float));
    return;
  }
  merger_.forward(a.x.data(), n_patches, out, precision, pool);
}

// x += attention(LN1(x)); x += fc2(quick_gelu(fc1(LN2(x)))).
void VisionEncoder::run_block(const Block& block, Activations& a, Precision precision) const {
  ThreadPool& pool = *pool_;
  const int64_t n = a.n;
  const int64_t d = params_.hidden_size;
  const int64_t wide = params_.intermediate_size;
  const float eps = params_.layer_norm_eps;
  float* x = a.x.data();
  float* normed = a.normed.data();
  auto norm_rows = [&](const float* weight, const float* bias) {
    parallel_rows(pool, n, [&](int64_t first, int64_t end) {
      for (int64_t i = first; i < end; ++i) layer_norm(x + i * d, weight, bias, d, eps, normed + i * d);
    });
  };
  auto add_normed_to_residual = [&]() {
    parallel_rows(pool, n, [&](int64_t first, int64_t end) {
      add_in_place(x + first * d, normed + first * d, (end - first) * d);
    });
  };

  norm_rows(block.norm1_weight, block.norm1_bias);
  block.q.forward(normed, n, a.q, precision, pool);
  block.k.forward(normed, n, a.k, precision, pool);
  block.v.forward(normed, n, a.v, precision, pool);
  parallel_rows(pool, n, [&](int64_t first, int64_t end) {
    for (int64_t i = first; i < end; ++i) {
      a.rope.apply(a.q + i * d, i, params_.num_heads);
      a.rope.apply(a.k + i * d, i, params_.num_heads);
    }
  });
  a.attention.run(a.q, a.k, a.v, d, a.context, precision, pool);
  block.out.forward(a.context, n, normed, precision, pool);
  add_normed_to_residual();

  norm_rows(block.norm2_weight, block.norm2_bias);
  block.up.forward(normed, n, a.mlp, precision, pool);
  parallel_rows(pool, n, [&](int64_t first, int64_t end) {
    quick_gelu_in_place(a.mlp + first * wide, (end - first) * wide);
  });
  block.down.forward(a.mlp, n, normed, precision, pool);
  add_normed_to_residual();
}

}  // namespace qvl
