// The model's ops on numpy arrays, each run on the active ISA's table: for the tests that hold every
// ISA path to the scalar reference (tests/test_ops_isa.py, test_causal_attention_isa.py), not a user API.
// Rows are C-contiguous float32; results are new arrays; the GIL is released while the ops run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "common/thread_pool.h"
#include "ops/causal_attention.h"
#include "ops/ops.h"
#include "ops/vision_attention.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

// x as rows: (rows, n), or a single row (n,).
int64_t row_length(const FloatArray& x) {
  require(x.ndim() == 1 || x.ndim() == 2, "x must be 1-D or 2-D");
  return x.shape(x.ndim() - 1);
}

FloatArray like(const FloatArray& x) {
  return FloatArray(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
}

void require_vector(const FloatArray& v, int64_t n, const char* what) {
  require(v.ndim() == 1 && v.shape(0) == n, std::string(what) + " must have shape (" + std::to_string(n) + ",)");
}

// fn(in_row, out_row) for every row of x, into a new array shaped as x.
template <typename RowFn>
FloatArray map_rows(const FloatArray& x, const RowFn& fn) {
  const int64_t n = row_length(x), rows = n > 0 ? x.size() / n : 0;
  FloatArray out = like(x);
  const float* in = x.data();
  float* dst = out.mutable_data();
  py::gil_scoped_release release;
  for (int64_t r = 0; r < rows; ++r) fn(in + r * n, dst + r * n, n);
  return out;
}

FloatArray rms_norm(const FloatArray& x, const FloatArray& weight, float eps) {
  require_vector(weight, row_length(x), "weight");
  const float* w = weight.data();
  return map_rows(x, [&](const float* in, float* out, int64_t n) { qvl::rms_norm(in, w, n, eps, out); });
}

FloatArray rms_norm_heads(const FloatArray& x, const FloatArray& weight, float eps) {
  require(x.ndim() == 2, "x must have shape (n_heads, head_dim)");
  require_vector(weight, x.shape(1), "weight");
  FloatArray out = like(x);
  std::memcpy(out.mutable_data(), x.data(), static_cast<size_t>(x.size()) * sizeof(float));
  float* heads = out.mutable_data();
  const float* w = weight.data();
  py::gil_scoped_release release;
  qvl::rms_norm_heads(heads, x.shape(0), x.shape(1), w, eps);
  return out;
}

FloatArray layer_norm(const FloatArray& x, const FloatArray& weight, const FloatArray& bias, float eps) {
  require_vector(weight, row_length(x), "weight");
  require_vector(bias, row_length(x), "bias");
  const float *w = weight.data(), *b = bias.data();
  return map_rows(x, [&](const float* in, float* out, int64_t n) { qvl::layer_norm(in, w, b, n, eps, out); });
}

// One of the in-place row functions by name, on a copy of x (the activations on the whole array at
// once, softmax row by row).
FloatArray activation(const std::string& name, const FloatArray& x) {
  void (*fn)(float*, int64_t) = nullptr;
  if (name == "quick_gelu") fn = qvl::quick_gelu_in_place;
  if (name == "gelu") fn = qvl::gelu_in_place;
  if (name == "gelu_tanh") fn = qvl::gelu_tanh_in_place;
  if (name == "softmax") fn = qvl::softmax_in_place;
  require(fn != nullptr, "unknown activation '" + name + "' (quick_gelu, gelu, gelu_tanh, softmax)");
  if (name == "softmax") {
    return map_rows(x, [&](const float* in, float* out, int64_t n) {
      std::copy(in, in + n, out);
      fn(out, n);
    });
  }
  FloatArray out = like(x);
  std::memcpy(out.mutable_data(), x.data(), static_cast<size_t>(x.size()) * sizeof(float));
  float* values = out.mutable_data();
  const int64_t size = x.size();
  py::gil_scoped_release release;
  fn(values, size);
  return out;
}

FloatArray silu_mul(const FloatArray& gate, const FloatArray& up) {
  require(gate.ndim() == up.ndim() && std::equal(gate.shape(), gate.shape() + gate.ndim(), up.shape()),
          "gate and up must have the same shape");
  FloatArray out = like(gate);
  std::memcpy(out.mutable_data(), gate.data(), static_cast<size_t>(gate.size()) * sizeof(float));
  float* values = out.mutable_data();
  const float* ups = up.data();
  const int64_t size = gate.size();
  py::gil_scoped_release release;
  qvl::silu_mul_in_place(values, ups, size);
  return out;
}

FloatArray rope(const FloatArray& heads, const FloatArray& cos, const FloatArray& sin) {
  require(heads.ndim() == 2 && heads.shape(1) % 2 == 0, "heads must have shape (n_heads, head_dim), head_dim even");
  require_vector(cos, heads.shape(1) / 2, "cos");
  require_vector(sin, heads.shape(1) / 2, "sin");
  FloatArray out = like(heads);
  std::memcpy(out.mutable_data(), heads.data(), static_cast<size_t>(heads.size()) * sizeof(float));
  float* values = out.mutable_data();
  const float *c = cos.data(), *s = sin.data();
  py::gil_scoped_release release;
  qvl::apply_rope(values, heads.shape(0), heads.shape(1), c, s);
  return out;
}

// The decoder's causal attention of the last n of n_keys positions, on keys and values given as
// (n_kv_heads, n_keys, head_dim): for the tests that hold each ISA path to the scalar one.
FloatArray causal_attention(const FloatArray& q, const FloatArray& keys, const FloatArray& values, int64_t n_heads,
                            int n_threads) {
  if (keys.ndim() != 3 || values.ndim() != 3 || !std::equal(keys.shape(), keys.shape() + 3, values.shape())) {
    throw std::invalid_argument("keys and values must both have shape (n_kv_heads, n_keys, head_dim)");
  }
  const qvl::AttentionShape shape{n_heads, keys.shape(0), keys.shape(2)};
  const int64_t n_keys = keys.shape(1);
  if (n_heads <= 0 || shape.n_kv_heads <= 0 || n_heads % shape.n_kv_heads != 0) {
    throw std::invalid_argument("n_heads must be a positive multiple of n_kv_heads");
  }
  if (q.ndim() != 2 || q.shape(0) > n_keys || q.shape(1) != n_heads * shape.head_dim) {
    throw std::invalid_argument("q must have shape (n <= n_keys, n_heads * head_dim)");
  }
  const int64_t n = q.shape(0);
  FloatArray out({q.shape(0), q.shape(1)});
  const float *queries = q.data(), *key_data = keys.data(), *value_data = values.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    qvl::ThreadPool& pool = pool_for(n_threads);
    qvl::KvCache cache(1, shape.n_kv_heads, shape.head_dim, n_keys);
    const int64_t head_floats = n_keys * shape.head_dim;
    for (int64_t head = 0; head < shape.n_kv_heads; ++head) {
      std::copy_n(key_data + head * head_floats, head_floats, cache.keys(0, head));
      std::copy_n(value_data + head * head_floats, head_floats, cache.values(0, head));
    }
    cache.grow(n_keys);
    std::vector<float> scratch(
        static_cast<size_t>(pool.size() * qvl::causal_attention_scratch_floats(n_keys, shape.head_dim)));
    qvl::causal_attention(queries, n, n_keys - n, cache, 0, shape, dst, scratch.data(), pool);
  }
  return out;
}

// The ViT's attention over segments (cu_seqlens bounds) of q, k, v rows of n_heads * head_dim.
FloatArray vision_attention(const FloatArray& q, const FloatArray& k, const FloatArray& v,
                            const std::vector<int64_t>& bounds, int64_t n_heads, const std::string& precision_name,
                            int n_threads) {
  require(q.ndim() == 2 && k.ndim() == 2 && v.ndim() == 2, "q, k and v must be 2-D (rows, n_heads * head_dim)");
  require(std::equal(q.shape(), q.shape() + 2, k.shape()) && std::equal(q.shape(), q.shape() + 2, v.shape()),
          "q, k and v must have the same shape");
  require(n_heads > 0 && q.shape(1) % n_heads == 0 && (q.shape(1) / n_heads) % 4 == 0,
          "the row width must be n_heads times a head size that is a multiple of 4");
  require(!bounds.empty() && bounds.back() == q.shape(0), "segment bounds must end at the number of rows");
  const qvl::Precision precision = parse_precision(precision_name);
  FloatArray out = like(q);
  const float *queries = q.data(), *keys = k.data(), *values = v.data();
  float* dst = out.mutable_data();
  const int64_t width = q.shape(1);
  py::gil_scoped_release release;
  qvl::ThreadPool& pool = pool_for(n_threads);
  qvl::SegmentedAttention attention(n_heads, width / n_heads, bounds, pool.size());
  attention.run(queries, keys, values, width, dst, precision, pool);
  return out;
}

}  // namespace

void register_model_ops(py::module_& m) {
  m.def("rms_norm", &rms_norm, py::arg("x"), py::arg("weight"), py::arg("eps"),
        "RMSNorm of each row of x (rows, n) with weight (n,), on the active ISA.");
  m.def("rms_norm_heads", &rms_norm_heads, py::arg("x"), py::arg("weight"), py::arg("eps"),
        "RMSNorm of each head of x (n_heads, head_dim) with one weight (head_dim,), as Qwen3's q/k norm.");
  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
        "LayerNorm of each row of x (rows, n) with weight and bias (n,), on the active ISA.");
  m.def("activation", &activation, py::arg("name"), py::arg("x"),
        "'quick_gelu', 'gelu' (erf), 'gelu_tanh' on every value of x, or 'softmax' of each row, on the active ISA.");
  m.def("silu_mul", &silu_mul, py::arg("gate"), py::arg("up"), "silu(gate) * up on the active ISA.");
  m.def("rope", &rope, py::arg("heads"), py::arg("cos"), py::arg("sin"),
        "Rotates pairs (j, j + head_dim / 2) of each head (n_heads, head_dim) by cos[j], sin[j] (head_dim / 2,).");
  m.def("causal_attention", &causal_attention, py::arg("q"), py::arg("keys"), py::arg("values"), py::arg("n_heads"),
        py::arg("n_threads"),
        "The decoder's grouped-query causal attention: q (n, n_heads * head_dim) for the last n of n_keys "
        "positions, keys and values (n_kv_heads, n_keys, head_dim); returns float32 (n, n_heads * head_dim).");
  m.def("vision_attention", &vision_attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("segment_bounds"),
        py::arg("n_heads"), py::arg("precision"), py::arg("n_threads"),
        "The ViT's attention of q, k, v (rows, n_heads * head_dim) within each segment [b_i, b_i+1) of "
        "segment_bounds (0 = b_0 < ... = rows); returns float32 (rows, n_heads * head_dim).");
}
