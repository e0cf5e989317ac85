#include "model/vision_weights.h"

#include <algorithm>
#include <stdexcept>

#include "backend/backend.h"

namespace qvl {

namespace {
constexpr int64_t kRowsPerTask = 16;

std::string dims_text(const GgufTensorInfo& info) {
  std::string text = "[";
  for (size_t i = 0; i < info.dims.size(); ++i) text += (i ? ", " : "") + std::to_string(info.dims[i]);
  return text + "]";
}
}  // namespace

const float* f32_vector(const GgufFile& file, const std::string& name, int64_t length) {
  const GgufTensorInfo& info = file.tensor(name);
  if (info.type != GgmlType::F32 || info.dims.size() != 1 || info.dims[0] != length) {
    throw ModelFormatError(file.path() + ": tensor '" + name + "' should be F32 [" + std::to_string(length) +
                           "], found " + type_name(info.type) + " " + dims_text(info));
  }
  return reinterpret_cast<const float*>(file.tensor_data(info));
}

WeightView checked_matrix(const GgufFile& file, const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo& info = file.tensor(name);
  WeightView view = file.weight(name);
  if (info.dims.size() != 2 || view.rows != rows || view.cols != cols || !is_runnable_type(info.type)) {
    throw ModelFormatError(file.path() + ": tensor '" + name + "' should be a matrix of ggml shape [" +
                           std::to_string(cols) + ", " + std::to_string(rows) + "], found " + type_name(info.type) +
                           " " + dims_text(info));
  }
  return view;
}

Linear Linear::load(const GgufFile& file, const std::string& prefix, int64_t out_features, int64_t in_features) {
  Linear linear;
  linear.weight = checked_matrix(file, prefix + ".weight", out_features, in_features);
  linear.bias = f32_vector(file, prefix + ".bias", out_features);
  return linear;
}

Linear Linear::rows(int64_t first, int64_t count) const {
  if (first < 0 || count <= 0 || first + count > weight.rows) throw std::out_of_range("Linear::rows outside the layer");
  Linear part = *this;
  part.weight.rows = count;
  part.weight.data = weight.data + static_cast<size_t>(first) * row_bytes(weight.type, weight.cols);
  part.bias = bias + first;
  return part;
}

void Linear::forward(const float* x, int64_t n, float* out, Precision precision, ThreadPool& pool) const {
  matmul(weight, x, n, out, precision, pool);
  const int64_t width = weight.rows;
  parallel_rows(pool, n, [&](int64_t first, int64_t end) {
    for (int64_t i = first; i < end; ++i) add_in_place(out + i * width, bias, width);
  });
}

Norm Norm::load(const GgufFile& file, const std::string& prefix, NormKind kind, int64_t width, float eps) {
  Norm norm;
  norm.kind = kind;
  norm.width = width;
  norm.eps = eps;
  norm.weight = f32_vector(file, prefix + ".weight", width);
  if (kind == NormKind::LayerNorm) norm.bias = f32_vector(file, prefix + ".bias", width);
  return norm;
}

void Norm::forward(const float* x, int64_t n, float* out, ThreadPool& pool) const {
  parallel_rows(pool, n, [&](int64_t first, int64_t end) {
    for (int64_t i = first; i < end; ++i) {
      switch (kind) {
        case NormKind::LayerNorm: layer_norm(x + i * width, weight, bias, width, eps, out + i * width); break;
        case NormKind::RmsNorm: rms_norm(x + i * width, weight, width, eps, out + i * width); break;
      }
    }
  });
}

void parallel_rows(ThreadPool& pool, int64_t n_rows, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
  pool.run(n_tasks, [&](int64_t task, int) {
    int64_t first = task * kRowsPerTask;
    fn(first, std::min(n_rows, first + kRowsPerTask));
  });
}

}  // namespace qvl
