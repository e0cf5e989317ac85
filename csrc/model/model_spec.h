// What a forward needs to know about a model: its sizes and the few declared ways in which Qwen2-VL,
// Qwen2.5-VL and Qwen3-VL differ. One struct per part, built once in Python from the GGUF metadata
// (python/qvl_local/config.py, variants.py) and bound as is; the forwards branch on these fields only,
// never on a model name. A new variant adds values here, its loader mapping in Python and the op that is
// genuinely new.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace qvl {

// ---- text decoder -------------------------------------------------------------------------------

enum class TextBlockKind {
  Qwen2,  // q, k and v projections with biases
  Qwen3,  // no biases; each head of q and k RMS-normalised (attn_q_norm / attn_k_norm) before RoPE
};

enum class MRopeLayout {
  Sectioned,    // frequency pairs [0, s0) turn with t, the next s1 with h, the last s2 with w (Qwen2-VL)
  Interleaved,  // pairs cycle t, h, w, t, h, w, ... until h's and w's sections are used up (Qwen3-VL)
};

struct TextSpec {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rope_theta = 1e6;
  float rms_norm_eps = 1e-6f;
  std::array<int, 3> mrope_sections{0, 0, 0};  // rotary frequency pairs per (t, h, w)
  MRopeLayout mrope_layout = MRopeLayout::Sectioned;
  TextBlockKind block = TextBlockKind::Qwen2;
  // Deepstack (Qwen3-VL): the vision tokens' k-th extra embedding is added to their hidden state after
  // decoder layer k, for k < deepstack_layers.
  int64_t deepstack_layers = 0;
};

// ---- vision encoder -----------------------------------------------------------------------------

enum class NormKind {
  LayerNorm,  // (x - mean) / std * weight + bias
  RmsNorm,    // x / rms(x) * weight
};

enum class VisionMlpKind {
  QuickGelu,  // ffn_down(quick_gelu(ffn_up(x)))               Qwen2-VL
  SwiGlu,     // ffn_down(silu(ffn_gate(x)) * ffn_up(x))        Qwen2.5-VL
  GeluTanh,   // ffn_down(gelu_tanh(ffn_up(x)))                 Qwen3-VL
};

// A patch merger: norm, merge x merge neighbouring patches concatenated, fc1, exact GELU, fc2.
struct MergerSpec {
  NormKind norm = NormKind::LayerNorm;
  bool norm_after_merge = false;  // normalise the concatenated window (width merge^2 * hidden), not each patch
  std::string norm_name;          // tensor prefixes: `<norm_name>.weight` (and `.bias` for a LayerNorm)
  std::string fc1_name;
  std::string fc2_name;
};

struct VisionSpec {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t patch_size = 0;
  int64_t temporal_patch_size = 0;
  int64_t spatial_merge_size = 0;
  int64_t merger_hidden_size = 0;
  int64_t out_hidden_size = 0;
  float layer_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;

  NormKind block_norm = NormKind::LayerNorm;
  VisionMlpKind mlp = VisionMlpKind::QuickGelu;
  bool fused_qkv = false;  // one `attn_qkv` projection (q, k, v stacked) instead of attn_q / attn_k / attn_v
  // One tensor per temporal slice of the Conv3D kernel, [hidden][3][patch][patch] each.
  std::vector<std::string> patch_embed_names;
  std::string patch_bias_name;  // the Conv3D bias, or empty when it has none
  // A learned square grid of position embeddings [side * side][hidden] interpolated to each image
  // (Qwen3-VL), or empty when the 2-D RoPE is the only position signal.
  std::string position_embed_name;
  // Window attention (Qwen2.5-VL): windows of window_size pixels; 0 = every layer attends over the whole
  // frame. full_attention_layers lists the layers that still do when windows are on.
  int64_t window_size = 0;
  std::vector<int64_t> full_attention_layers;

  MergerSpec merger;
  // Deepstack (Qwen3-VL): the output of each listed block also goes through a merger of its own.
  std::vector<int64_t> deepstack_layers;
  std::vector<MergerSpec> deepstack_mergers;  // one per deepstack layer, same order
};

}  // namespace qvl
