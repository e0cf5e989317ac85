// The decoder for Python: token ids and positions in, logits out, the KV cache kept between calls.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "model/text_decoder.h"

namespace py = pybind11;
using qvl::TextDecoder;

namespace {

using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

qvl::TextHyperParams params_from_dict(const py::dict& config) {
  qvl::TextHyperParams params;
  params.vocab_size = config["vocab_size"].cast<int64_t>();
  params.hidden_size = config["hidden_size"].cast<int64_t>();
  params.intermediate_size = config["intermediate_size"].cast<int64_t>();
  params.num_layers = config["num_layers"].cast<int64_t>();
  params.num_heads = config["num_heads"].cast<int64_t>();
  params.num_kv_heads = config["num_kv_heads"].cast<int64_t>();
  params.head_dim = config["head_dim"].cast<int64_t>();
  params.rope_theta = config["rope_theta"].cast<double>();
  params.rms_norm_eps = config["rms_norm_eps"].cast<float>();
  auto sections = config["mrope_sections"].cast<std::vector<int>>();
  if (sections.size() != 3) throw std::invalid_argument("mrope_sections needs 3 values");
  for (int i = 0; i < 3; ++i) params.mrope_sections[i] = sections[i];
  return params;
}

qvl::LogitsWanted parse_logits(const std::string& name) {
  if (name == "last") return qvl::LogitsWanted::Last;
  if (name == "all") return qvl::LogitsWanted::All;
  if (name == "none") return qvl::LogitsWanted::None;
  throw std::invalid_argument("logits must be 'last', 'all' or 'none', got '" + name + "'");
}

py::object forward(TextDecoder& decoder, const IntArray& ids, const IntArray& positions, const py::object& embeddings,
                   const py::object& embedded_rows, const std::string& logits, const std::string& precision) {
  if (ids.ndim() != 1) throw std::invalid_argument("ids must be a 1-D array");
  const int64_t n = ids.shape(0);
  if (positions.ndim() != 2 || positions.shape(0) != 3 || positions.shape(1) != n) {
    throw std::invalid_argument("positions must have shape (3, " + std::to_string(n) + ")");
  }
  qvl::TokenBatch batch;
  batch.n = n;
  batch.ids = ids.data();
  batch.positions = positions.data();
  FloatArray embedding_array;
  IntArray row_array;
  if (!embeddings.is_none()) {
    embedding_array = embeddings.cast<FloatArray>();
    row_array = embedded_rows.cast<IntArray>();
    const int64_t hidden = decoder.params().hidden_size;
    if (embedding_array.ndim() != 2 || embedding_array.shape(1) != hidden || row_array.ndim() != 1 ||
        row_array.shape(0) != embedding_array.shape(0)) {
      throw std::invalid_argument("embeddings must be (k, " + std::to_string(hidden) + ") with k embedded_rows");
    }
    batch.embeddings = embedding_array.data();
    batch.embedded_rows = row_array.data();
    batch.n_embedded = row_array.shape(0);
  }
  qvl::LogitsWanted wanted = parse_logits(logits);
  qvl::Precision mode = parse_precision(precision);
  const int64_t vocab = decoder.params().vocab_size;
  py::array_t<float> result;
  if (wanted == qvl::LogitsWanted::All) result = py::array_t<float>({n, vocab});
  else if (wanted == qvl::LogitsWanted::Last) result = py::array_t<float>({vocab});
  float* out = wanted == qvl::LogitsWanted::None ? nullptr : result.mutable_data();
  {
    py::gil_scoped_release unlocked;
    decoder.forward(batch, wanted, out, mode);
  }
  if (wanted == qvl::LogitsWanted::None) return py::none();
  return std::move(result);
}

}  // namespace

void register_text_model(py::module_& m) {
  py::class_<TextDecoder>(m, "TextModel", "The Qwen2 decoder with M-RoPE and a preallocated KV cache")
      .def(py::init([](std::shared_ptr<qvl::GgufFile> file, const py::dict& config, int64_t n_ctx, int64_t n_batch,
                       int n_threads) {
             qvl::TextHyperParams params = params_from_dict(config);
             py::gil_scoped_release unlocked;
             return std::make_unique<TextDecoder>(std::move(file), params, n_ctx, n_batch, n_threads);
           }),
           py::arg("gguf"), py::arg("config"), py::arg("n_ctx"), py::arg("n_batch"), py::arg("n_threads"))
      .def("forward", &forward, py::arg("ids"), py::arg("positions"), py::kw_only(), py::arg("embeddings") = py::none(),
           py::arg("embedded_rows") = py::none(), py::arg("logits") = "last", py::arg("precision") = "fast",
           "Runs the tokens after the cached ones; returns float32 logits [vocab] (last), [n, vocab] (all) or None")
      .def_property_readonly("n_past", &TextDecoder::n_past)
      .def_property_readonly("n_ctx", &TextDecoder::n_ctx)
      .def_property_readonly("kv_cache_bytes", &TextDecoder::kv_cache_bytes)
      .def("truncate", &TextDecoder::truncate, py::arg("n_past"), "Keeps the first n_past cached positions");
}
