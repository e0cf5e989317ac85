// The decoder for Python: its TextSpec as a bound struct, token ids and positions in, logits out, the
// KV cache kept between calls.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "model/text_decoder.h"

namespace py = pybind11;
using qvl::TextDecoder;
using qvl::TextSpec;

namespace {

using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

qvl::LogitsWanted parse_logits(const std::string& name) {
  if (name == "last") return qvl::LogitsWanted::Last;
  if (name == "all") return qvl::LogitsWanted::All;
  if (name == "none") return qvl::LogitsWanted::None;
  throw std::invalid_argument("logits must be 'last', 'all' or 'none', got '" + name + "'");
}

// The arrays of one forward call, kept alive (and converted to the C++ types) while it runs.
struct BatchArrays {
  IntArray ids, positions, rows;
  FloatArray embeddings;
  qvl::TokenBatch batch;
};

// embeddings: (k, hidden), or (k, 1 + deepstack, hidden) with each row's deepstack features after it.
void bind_batch(BatchArrays& arrays, const TextSpec& spec, const py::object& embeddings,
                const py::object& embedded_rows) {
  if (arrays.ids.ndim() != 1) throw std::invalid_argument("ids must be a 1-D array");
  const int64_t n = arrays.ids.shape(0);
  if (arrays.positions.ndim() != 2 || arrays.positions.shape(0) != 3 || arrays.positions.shape(1) != n) {
    throw std::invalid_argument("positions must have shape (3, " + std::to_string(n) + ")");
  }
  qvl::TokenBatch& batch = arrays.batch;
  batch.n = n;
  batch.ids = arrays.ids.data();
  batch.positions = arrays.positions.data();
  if (embeddings.is_none()) return;
  arrays.embeddings = embeddings.cast<FloatArray>();
  arrays.rows = embedded_rows.cast<IntArray>();
  const auto& e = arrays.embeddings;
  const int64_t hidden = spec.hidden_size;
  const bool shaped = (e.ndim() == 2 && e.shape(1) == hidden) || (e.ndim() == 3 && e.shape(2) == hidden && e.shape(1) >= 1);
  if (!shaped || arrays.rows.ndim() != 1 || arrays.rows.shape(0) != e.shape(0)) {
    throw std::invalid_argument("embeddings must be (k, " + std::to_string(hidden) + ") or (k, 1 + deepstack, " +
                                std::to_string(hidden) + ") with k embedded_rows");
  }
  batch.embeddings = e.data();
  batch.embedded_rows = arrays.rows.data();
  batch.n_embedded = arrays.rows.shape(0);
  batch.n_deepstack = e.ndim() == 3 ? e.shape(1) - 1 : 0;
}

py::object run_forward(TextDecoder& decoder, BatchArrays& arrays, qvl::LogitsWanted wanted, const std::string& precision,
                       qvl::ActivationDump* dump) {
  const qvl::Precision mode = parse_precision(precision);
  const int64_t n = arrays.batch.n, vocab = decoder.spec().vocab_size;
  py::array_t<float> result;
  if (wanted == qvl::LogitsWanted::All) result = py::array_t<float>({n, vocab});
  else if (wanted == qvl::LogitsWanted::Last) result = py::array_t<float>({vocab});
  float* out = wanted == qvl::LogitsWanted::None ? nullptr : result.mutable_data();
  {
    py::gil_scoped_release unlocked;
    decoder.forward(arrays.batch, wanted, out, mode, dump);
  }
  if (wanted == qvl::LogitsWanted::None) return py::none();
  return std::move(result);
}

py::object forward(TextDecoder& decoder, const IntArray& ids, const IntArray& positions, const py::object& embeddings,
                   const py::object& embedded_rows, const std::string& logits, const std::string& precision) {
  BatchArrays arrays{ids, positions};
  bind_batch(arrays, decoder.spec(), embeddings, embedded_rows);
  return run_forward(decoder, arrays, parse_logits(logits), precision, nullptr);
}

py::dict trace(TextDecoder& decoder, const IntArray& ids, const IntArray& positions, const py::object& embeddings,
               const py::object& embedded_rows, const std::string& precision) {
  BatchArrays arrays{ids, positions};
  bind_batch(arrays, decoder.spec(), embeddings, embedded_rows);
  qvl::ActivationDump dump;
  py::object logits = run_forward(decoder, arrays, qvl::LogitsWanted::All, precision, &dump);
  py::dict named = dump_to_dict(dump);
  named["logits"] = logits;
  return named;
}

}  // namespace

void register_text_model(py::module_& m) {
  py::enum_<qvl::TextBlockKind>(m, "TextBlockKind", "Decoder block: qwen2 (q/k/v biases) or qwen3 (per-head q/k RMSNorm)")
      .value("qwen2", qvl::TextBlockKind::Qwen2)
      .value("qwen3", qvl::TextBlockKind::Qwen3);
  py::enum_<qvl::MRopeLayout>(m, "MRopeLayout", "How M-RoPE gives frequency pairs to t, h, w")
      .value("sectioned", qvl::MRopeLayout::Sectioned)
      .value("interleaved", qvl::MRopeLayout::Interleaved);

  py::class_<TextSpec>(m, "TextSpec", "The decoder's sizes and variant (model_spec.h); built by qvl_local.config")
      .def(py::init<>())
      .def_readwrite("vocab_size", &TextSpec::vocab_size)
      .def_readwrite("hidden_size", &TextSpec::hidden_size)
      .def_readwrite("intermediate_size", &TextSpec::intermediate_size)
      .def_readwrite("num_layers", &TextSpec::num_layers)
      .def_readwrite("num_heads", &TextSpec::num_heads)
      .def_readwrite("num_kv_heads", &TextSpec::num_kv_heads)
      .def_readwrite("head_dim", &TextSpec::head_dim)
      .def_readwrite("rope_theta", &TextSpec::rope_theta)
      .def_readwrite("rms_norm_eps", &TextSpec::rms_norm_eps)
      .def_readwrite("mrope_sections", &TextSpec::mrope_sections)
      .def_readwrite("mrope_layout", &TextSpec::mrope_layout)
      .def_readwrite("block", &TextSpec::block)
      .def_readwrite("deepstack_layers", &TextSpec::deepstack_layers);

  py::class_<TextDecoder>(m, "TextModel", "The decoder with M-RoPE and a preallocated KV cache")
      .def(py::init([](std::shared_ptr<qvl::GgufFile> file, const TextSpec& spec, int64_t n_ctx, int64_t n_batch,
                       std::shared_ptr<qvl::ThreadPool> pool) {
             py::gil_scoped_release unlocked;
             return std::make_unique<TextDecoder>(std::move(file), spec, n_ctx, n_batch, std::move(pool));
           }),
           py::arg("gguf"), py::arg("spec"), py::arg("n_ctx"), py::arg("n_batch"), py::arg("pool"))
      .def("forward", &forward, py::arg("ids"), py::arg("positions"), py::kw_only(), py::arg("embeddings") = py::none(),
           py::arg("embedded_rows") = py::none(), py::arg("logits") = "last", py::arg("precision") = "fast",
           "Runs the tokens after the cached ones; returns float32 logits [vocab] (last), [n, vocab] (all) or None. "
           "embeddings: float32 (k, hidden) for the k embedded_rows, or (k, 1 + spec.deepstack_layers, hidden) "
           "with each row's deepstack features after its embedding (VisionModel.encode_features)")
      .def("trace", &trace, py::arg("ids"), py::arg("positions"), py::kw_only(), py::arg("embeddings") = py::none(),
           py::arg("embedded_rows") = py::none(), py::arg("precision") = "fast",
           "forward (appending to the cache) that also returns the named activations: 'input', 'block.<i>' "
           "(each layer's hidden states) and 'logits', float32 [n, ...] each")
      .def_property_readonly("spec", &TextDecoder::spec)
      .def_property_readonly("n_past", &TextDecoder::n_past)
      .def_property_readonly("n_ctx", &TextDecoder::n_ctx)
      .def_property_readonly("kv_cache_bytes", &TextDecoder::kv_cache_bytes)
      .def("truncate", &TextDecoder::truncate, py::arg("n_past"), "Keeps the first n_past cached positions");
}
