// Pieces the vision encoder and the mergers share: named tensors fetched with their shapes checked,
// a linear layer (kernel matmul + float bias), a norm of either kind, and a row-parallel loop for the
// element-wise steps.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "common/thread_pool.h"
#include "kernels/kernels.h"
#include "gguf/gguf_file.h"
#include "model/model_spec.h"

namespace qvl {

// The F32 vector `name` of exactly `length` values; ModelFormatError names the tensor otherwise.
const float* f32_vector(const GgufFile& file, const std::string& name, int64_t length);
// The matrix `name` as `rows` x `cols` (rows = out features) of a type the kernels run.
WeightView checked_matrix(const GgufFile& file, const std::string& name, int64_t rows, int64_t cols);

struct Linear {
  WeightView weight;
  const float* bias = nullptr;

  // Loads `<prefix>.weight` [out_features x in_features] and the F32 `<prefix>.bias`.
  static Linear load(const GgufFile& file, const std::string& prefix, int64_t out_features, int64_t in_features);
  // The layer of out features [first, first + count): a view of those weight rows and bias values (a
  // fused projection such as q/k/v stacked in one tensor splits into its parts this way, without copies).
  Linear rows(int64_t first, int64_t count) const;
  // out[i] = W x[i] + bias for n rows.
  void forward(const float* x, int64_t n, float* out, Precision precision, ThreadPool& pool) const;
};

struct Norm {
  NormKind kind = NormKind::LayerNorm;
  const float* weight = nullptr;
  const float* bias = nullptr;  // LayerNorm only
  int64_t width = 0;
  float eps = 1e-6f;

  // Loads `<prefix>.weight` (and `<prefix>.bias` for a LayerNorm), F32 [width].
  static Norm load(const GgufFile& file, const std::string& prefix, NormKind kind, int64_t width, float eps);
  // out = norm(x) for n rows of `width` floats, spread over the pool.
  void forward(const float* x, int64_t n, float* out, ThreadPool& pool) const;
};

// Calls fn(first_row, end_row) over [0, n_rows) in chunks, spread over the pool.
void parallel_rows(ThreadPool& pool, int64_t n_rows, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace qvl
