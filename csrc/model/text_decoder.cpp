#include "model/text_decoder.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "backend/backend.h"

namespace qvl {

namespace {

std::string block(int64_t index, const char* name) { return "blk." + std::to_string(index) + "." + name; }

}  // namespace

template <typename RowFn>
void TextDecoder::for_each_row(int64_t count, const RowFn& row_fn) {
  if (count == 1) {
    row_fn(0);
  } else {
    pool_->run(count, [&](int64_t row, int) { row_fn(row); });
  }
}

TextDecoder::TextDecoder(std::shared_ptr<GgufFile> file, const TextSpec& spec, int64_t n_ctx, int64_t n_batch,
                         std::shared_ptr<ThreadPool> pool)
    : file_(std::move(file)),
      spec_(spec),
      n_batch_(std::max<int64_t>(1, n_batch)),
      pool_(std::move(pool)),
      rope_(spec.head_dim, spec.rope_theta, spec.mrope_sections, spec.mrope_layout),
      cache_(spec.num_layers, spec.num_kv_heads, spec.head_dim, n_ctx),
      attention_shape_{spec.num_heads, spec.num_kv_heads, spec.head_dim} {
  if (!pool_) throw std::invalid_argument("TextDecoder needs a thread pool");
  if (spec.num_kv_heads <= 0 || spec.num_heads % spec.num_kv_heads != 0) {
    throw std::invalid_argument("num_heads must be a multiple of num_kv_heads");
  }
  if (spec.deepstack_layers < 0 || spec.deepstack_layers > spec.num_layers) {
    throw std::invalid_argument("deepstack_layers must be between 0 and the number of layers");
  }
  const int64_t hidden = spec.hidden_size, q_width = spec.num_heads * spec.head_dim;
  const int64_t kv_width = spec.num_kv_heads * spec.head_dim, inter = spec.intermediate_size;
  token_embedding_ = matrix("token_embd.weight", spec.vocab_size, hidden);
  output_ = file_->find_tensor("output.weight") ? matrix("output.weight", spec.vocab_size, hidden) : token_embedding_;
  output_norm_ = vector("output_norm.weight", hidden);
  for (int64_t i = 0; i < spec.num_layers; ++i) layers_.push_back(load_layer(i));
  const size_t rows = static_cast<size_t>(n_batch_);
  x_.resize(rows * hidden);
  normed_.resize(rows * hidden);
  q_.resize(rows * q_width);
  k_.resize(rows * kv_width);
  v_.resize(rows * kv_width);
  attended_.resize(rows * q_width);
  projected_.resize(rows * hidden);
  gate_.resize(rows * inter);
  up_.resize(rows * inter);
  scores_.resize(static_cast<size_t>(pool_->size()) *
                 static_cast<size_t>(causal_attention_scratch_floats(n_ctx, spec.head_dim)));
}

TextDecoder::Layer TextDecoder::load_layer(int64_t i) {
  const int64_t hidden = spec_.hidden_size, hd = spec_.head_dim, inter = spec_.intermediate_size;
  const int64_t q_width = spec_.num_heads * hd, kv_width = spec_.num_kv_heads * hd;
  Layer layer;
  layer.attn_norm = vector(block(i, "attn_norm.weight"), hidden);
  layer.q = matrix(block(i, "attn_q.weight"), q_width, hidden);
  layer.k = matrix(block(i, "attn_k.weight"), kv_width, hidden);
  layer.v = matrix(block(i, "attn_v.weight"), kv_width, hidden);
  layer.o = matrix(block(i, "attn_output.weight"), hidden, q_width);
  switch (spec_.block) {
    case TextBlockKind::Qwen2:
      layer.q_bias = vector(block(i, "attn_q.bias"), q_width);
      layer.k_bias = vector(block(i, "attn_k.bias"), kv_width);
      layer.v_bias = vector(block(i, "attn_v.bias"), kv_width);
      break;
    case TextBlockKind::Qwen3:
      layer.q_norm = vector(block(i, "attn_q_norm.weight"), hd);
      layer.k_norm = vector(block(i, "attn_k_norm.weight"), hd);
      break;
  }
  layer.ffn_norm = vector(block(i, "ffn_norm.weight"), hidden);
  layer.gate = matrix(block(i, "ffn_gate.weight"), inter, hidden);
  layer.up = matrix(block(i, "ffn_up.weight"), inter, hidden);
  layer.down = matrix(block(i, "ffn_down.weight"), hidden, inter);
  return layer;
}

WeightView TextDecoder::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  WeightView view = file_->weight(name);
  if (view.rows != rows || view.cols != cols) {
    throw ModelFormatError(file_->path() + ": tensor '" + name + "' has shape [" + std::to_string(view.rows) + ", " +
                           std::to_string(view.cols) + "], expected [" + std::to_string(rows) + ", " +
                           std::to_string(cols) + "]");
  }
  return view;
}

const float* TextDecoder::vector(const std::string& name, int64_t length) {
  WeightView view = file_->weight(name);
  if (view.rows * view.cols != length) {
    throw ModelFormatError(file_->path() + ": tensor '" + name + "' has " + std::to_string(view.rows * view.cols) +
                           " values, expected " + std::to_string(length));
  }
  if (view.type == GgmlType::F32) return reinterpret_cast<const float*>(view.data);
  converted_vectors_.emplace_back(static_cast<size_t>(length));
  dequantize_rows(view, 0, view.rows, converted_vectors_.back().data());
  return converted_vectors_.back().data();
}

void TextDecoder::forward(const TokenBatch& batch, LogitsWanted wanted, float* logits, Precision precision,
                          ActivationDump* dump) {
  if (batch.n <= 0) throw std::invalid_argument("forward needs at least one token");
  for (int64_t e = 0; e < batch.n_embedded; ++e) {
    if (batch.embedded_rows[e] < 0 || batch.embedded_rows[e] >= batch.n) {
      throw std::invalid_argument("embedding row index out of range");
    }
  }
  if (batch.n_embedded > 0 && batch.n_deepstack != spec_.deepstack_layers) {
    throw std::invalid_argument("this model adds " + std::to_string(spec_.deepstack_layers) +
                                " deepstack features to each embedded row, the batch has " +
                                std::to_string(batch.n_deepstack));
  }
  const int64_t start = cache_.size();
  cache_.grow(batch.n);  // throws the context-full error before any work is done
  try {
    for (int64_t begin = 0; begin < batch.n; begin += n_batch_) {
      int64_t count = std::min(n_batch_, batch.n - begin);
      bool last_chunk = begin + count == batch.n;
      LogitsWanted chunk_wanted = wanted == LogitsWanted::All ? LogitsWanted::All
                                  : (wanted == LogitsWanted::Last && last_chunk ? LogitsWanted::Last : LogitsWanted::None);
      float* chunk_logits = wanted == LogitsWanted::All ? logits + begin * spec_.vocab_size : logits;
      forward_chunk(batch, begin, count, chunk_wanted, chunk_logits, precision, dump);
    }
  } catch (...) {
    cache_.truncate(start);  // a failed call leaves the cache as it was
    throw;
  }
}

void TextDecoder::embed(const TokenBatch& batch, int64_t begin, int64_t count) {
  const int64_t hidden = spec_.hidden_size;
  for (int64_t i = 0; i < count; ++i) {
    int32_t id = batch.ids[begin + i];
    if (id < 0 || id >= spec_.vocab_size) {
      throw std::invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary of " +
                                  std::to_string(spec_.vocab_size));
    }
    dequantize_rows(token_embedding_, id, 1, x_.data() + i * hidden);
  }
  const int64_t stride = (1 + batch.n_deepstack) * hidden;
  for (int64_t e = 0; e < batch.n_embedded; ++e) {
    int64_t row = batch.embedded_rows[e] - begin;
    if (row >= 0 && row < count) std::memcpy(x_.data() + row * hidden, batch.embeddings + e * stride, hidden * sizeof(float));
  }
}

// Deepstack: after layer k, every embedded row in this chunk adds its k-th deepstack feature.
void TextDecoder::add_deepstack(const TokenBatch& batch, int64_t layer, int64_t begin, int64_t count) {
  const int64_t hidden = spec_.hidden_size, stride = (1 + batch.n_deepstack) * hidden;
  for (int64_t e = 0; e < batch.n_embedded; ++e) {
    int64_t row = batch.embedded_rows[e] - begin;
    if (row >= 0 && row < count) add_in_place(x_.data() + row * hidden, batch.embeddings + e * stride + (1 + layer) * hidden, hidden);
  }
}

void TextDecoder::forward_chunk(const TokenBatch& batch, int64_t begin, int64_t count, LogitsWanted wanted,
                                float* logits, Precision precision, ActivationDump* dump) {
  const int64_t hidden = spec_.hidden_size;
  embed(batch, begin, count);
  record(dump, "input", x_.data(), count, hidden);
  for (int64_t l = 0; l < spec_.num_layers; ++l) {
    attention_block(layers_[l], l, batch, begin, count, precision);
    mlp_block(layers_[l], count, precision);
    if (l < batch.n_deepstack) add_deepstack(batch, l, begin, count);
    record(dump, "block." + std::to_string(l), x_.data(), count, hidden);
  }
  if (wanted == LogitsWanted::None) return;
  const int64_t first_row = wanted == LogitsWanted::Last ? count - 1 : 0;
  const int64_t rows = count - first_row;
  for (int64_t i = 0; i < rows; ++i) {
    rms_norm(x_.data() + (first_row + i) * hidden, output_norm_, hidden, spec_.rms_norm_eps, normed_.data() + i * hidden);
  }
  project_logits(normed_.data(), rows, logits, precision);
}

void TextDecoder::project_logits(const float* hidden_rows, int64_t count, float* logits, Precision precision) {
  matmul(output_, hidden_rows, count, logits, precision, *pool_);
}

void TextDecoder::prepare_query_key(const Layer& layer, float* q, float* k, float* v) const {
  const int64_t hd = spec_.head_dim;
  switch (spec_.block) {
    case TextBlockKind::Qwen2:
      add_in_place(q, layer.q_bias, spec_.num_heads * hd);
      add_in_place(k, layer.k_bias, spec_.num_kv_heads * hd);
      add_in_place(v, layer.v_bias, spec_.num_kv_heads * hd);
      break;
    case TextBlockKind::Qwen3:
      // One call per row and tensor: the op looks the ISA's norm up once, not once per head.
      rms_norm_heads(q, spec_.num_heads, hd, layer.q_norm, spec_.rms_norm_eps);
      rms_norm_heads(k, spec_.num_kv_heads, hd, layer.k_norm, spec_.rms_norm_eps);
      break;
  }
}

void TextDecoder::attention_block(const Layer& layer, int64_t index, const TokenBatch& batch, int64_t begin,
                                  int64_t count, Precision precision) {
  const int64_t hidden = spec_.hidden_size, hd = spec_.head_dim;
  const int64_t q_width = spec_.num_heads * hd, kv_width = spec_.num_kv_heads * hd;
  for_each_row(count, [&](int64_t i) {
    rms_norm(x_.data() + i * hidden, layer.attn_norm, hidden, spec_.rms_norm_eps, normed_.data() + i * hidden);
  });
  matmul(layer.q, normed_.data(), count, q_.data(), precision, *pool_);
  matmul(layer.k, normed_.data(), count, k_.data(), precision, *pool_);
  matmul(layer.v, normed_.data(), count, v_.data(), precision, *pool_);

  // The cache already counts this chunk (forward grew it); its first position is:
  const int64_t first = cache_.size() - (batch.n - begin);
  for_each_row(count, [&](int64_t i) {
    float *q = q_.data() + i * q_width, *k = k_.data() + i * kv_width, *v = v_.data() + i * kv_width;
    prepare_query_key(layer, q, k, v);
    const int32_t position[3] = {batch.positions[begin + i], batch.positions[batch.n + begin + i],
                                 batch.positions[2 * batch.n + begin + i]};
    rope_.apply(q, spec_.num_heads, position);
    rope_.apply(k, spec_.num_kv_heads, position);
    for (int64_t h = 0; h < spec_.num_kv_heads; ++h) {
      std::memcpy(cache_.keys(index, h) + (first + i) * hd, k + h * hd, hd * sizeof(float));
      std::memcpy(cache_.values(index, h) + (first + i) * hd, v + h * hd, hd * sizeof(float));
    }
  });
  causal_attention(q_.data(), count, first, cache_, index, attention_shape_, attended_.data(), scores_.data(), *pool_);
  matmul(layer.o, attended_.data(), count, projected_.data(), precision, *pool_);
  for_each_row(count, [&](int64_t i) { add_in_place(x_.data() + i * hidden, projected_.data() + i * hidden, hidden); });
}

void TextDecoder::mlp_block(const Layer& layer, int64_t count, Precision precision) {
  const int64_t hidden = spec_.hidden_size, inter = spec_.intermediate_size;
  for_each_row(count, [&](int64_t i) {
    rms_norm(x_.data() + i * hidden, layer.ffn_norm, hidden, spec_.rms_norm_eps, normed_.data() + i * hidden);
  });
  matmul(layer.gate, normed_.data(), count, gate_.data(), precision, *pool_);
  matmul(layer.up, normed_.data(), count, up_.data(), precision, *pool_);
  for_each_row(count, [&](int64_t i) { silu_mul_in_place(gate_.data() + i * inter, up_.data() + i * inter, inter); });
  matmul(layer.down, gate_.data(), count, projected_.data(), precision, *pool_);
  for_each_row(count, [&](int64_t i) { add_in_place(x_.data() + i * hidden, projected_.data() + i * hidden, hidden); });
}


}  // namespace qvl
