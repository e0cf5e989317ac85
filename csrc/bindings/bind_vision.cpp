// The vision encoder for Python: its VisionSpec as a bound struct, numpy pixel rows and grids in,
// embeddings out, GIL released while it computes. Bad shapes raise ValueError before any work starts.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "common/thread_pool.h"
#include "gguf/gguf_file.h"
#include "model/position_embedding.h"
#include "model/vision_encoder.h"
#include "model/window_order.h"

namespace py = pybind11;
using qvl::MergerSpec;
using qvl::VisionEncoder;
using qvl::VisionSpec;

namespace {

using FloatRows = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IntRows = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

std::vector<qvl::GridThw> grids_from_array(const IntRows& grid_thw) {
  if (grid_thw.ndim() != 2 || grid_thw.shape(1) != 3) {
    throw py::value_error("grid_thw must have shape (k, 3), one (t, h, w) row per image or video");
  }
  std::vector<qvl::GridThw> grids;
  auto rows = grid_thw.unchecked<2>();
  for (py::ssize_t i = 0; i < rows.shape(0); ++i) grids.push_back({rows(i, 0), rows(i, 1), rows(i, 2)});
  return grids;
}

// The checked inputs of one encode call.
struct EncodeInputs {
  const float* pixels;
  int64_t n_patches;
  std::vector<qvl::GridThw> grids;
  qvl::Precision precision;
};

EncodeInputs checked_inputs(const VisionEncoder& encoder, const FloatRows& pixel_values, const IntRows& grid_thw,
                            const std::string& precision_name) {
  if (pixel_values.ndim() != 2) {
    throw py::value_error("pixel_values must be 2-D (patches, " + std::to_string(encoder.patch_values()) +
                          "), got " + std::to_string(pixel_values.ndim()) + " dimensions");
  }
  EncodeInputs inputs{pixel_values.data(), pixel_values.shape(0), grids_from_array(grid_thw),
                      parse_precision(precision_name)};
  encoder.validate(inputs.n_patches, pixel_values.shape(1), inputs.grids);
  return inputs;
}

void run_encode(const VisionEncoder& encoder, const EncodeInputs& in, bool pre_merge, const qvl::VisionOutputs& out) {
  py::gil_scoped_release unlocked;
  encoder.encode(in.pixels, in.n_patches, in.grids, pre_merge, in.precision, out);
}

py::array_t<float> encode(const VisionEncoder& encoder, const FloatRows& pixel_values, const IntRows& grid_thw,
                          bool pre_merge, const std::string& precision) {
  const EncodeInputs in = checked_inputs(encoder, pixel_values, grid_thw, precision);
  py::array_t<float> result({encoder.output_rows(in.n_patches, pre_merge), encoder.output_width(pre_merge)});
  qvl::VisionOutputs out;
  out.embeddings = result.mutable_data();
  run_encode(encoder, in, pre_merge, out);
  return result;
}

// Each token's embedding followed by its deepstack features: [tokens][1 + taps][width], the decoder's input.
py::array_t<float> encode_features(const VisionEncoder& encoder, const FloatRows& pixel_values, const IntRows& grid_thw,
                                   const std::string& precision) {
  const EncodeInputs in = checked_inputs(encoder, pixel_values, grid_thw, precision);
  const int64_t tokens = encoder.output_rows(in.n_patches, false), width = encoder.output_width(false);
  const int64_t taps = encoder.deepstack_taps();
  std::vector<float> embeddings(static_cast<size_t>(tokens * width)), deepstack(static_cast<size_t>(taps * tokens * width));
  qvl::VisionOutputs out;
  out.embeddings = embeddings.data();
  out.deepstack = deepstack.data();
  run_encode(encoder, in, false, out);
  py::array_t<float> features({tokens, 1 + taps, width});
  float* to = features.mutable_data();
  for (int64_t token = 0; token < tokens; ++token) {
    to = std::copy_n(embeddings.data() + token * width, width, to);
    for (int64_t tap = 0; tap < taps; ++tap) to = std::copy_n(deepstack.data() + (tap * tokens + token) * width, width, to);
  }
  return features;
}

py::dict trace(const VisionEncoder& encoder, const FloatRows& pixel_values, const IntRows& grid_thw,
               const std::string& precision) {
  const EncodeInputs in = checked_inputs(encoder, pixel_values, grid_thw, precision);
  const int64_t tokens = encoder.output_rows(in.n_patches, false), width = encoder.output_width(false);
  std::vector<float> embeddings(static_cast<size_t>(tokens * width));
  std::vector<float> deepstack(static_cast<size_t>(encoder.deepstack_taps() * tokens * width));
  qvl::ActivationDump dump;
  qvl::VisionOutputs out{embeddings.data(), deepstack.data(), &dump};
  run_encode(encoder, in, false, out);
  return dump_to_dict(dump);
}

py::tuple window_order(const IntRows& grid_thw, int64_t merge, int64_t window) {
  const qvl::WindowOrder order = qvl::window_order(grids_from_array(grid_thw), merge, window);
  return py::make_tuple(py::array_t<int64_t>(order.token_order.size(), order.token_order.data()),
                        py::array_t<int64_t>(order.window_bounds.size(), order.window_bounds.data()));
}

// The interpolated learned positions alone (what encode adds to the patch embeddings), for tests.
py::array_t<float> position_embedding(const FloatRows& table, const IntRows& grid_thw, int64_t merge) {
  if (table.ndim() != 2) throw py::value_error("table must be (side * side, width)");
  int64_t side = 0;
  while ((side + 1) * (side + 1) <= table.shape(0)) ++side;
  if (side * side != table.shape(0)) throw py::value_error("table must have a square number of rows");
  const std::vector<qvl::GridThw> grids = grids_from_array(grid_thw);
  int64_t patches = 0;
  for (const qvl::GridThw& g : grids) {
    if (g.t <= 0 || g.h <= 0 || g.w <= 0 || merge <= 0 || g.h % merge || g.w % merge) {
      throw py::value_error("grids must be positive multiples of the merge size");
    }
    patches += g.t * g.h * g.w;
  }
  py::array_t<float> out({patches, static_cast<int64_t>(table.shape(1))});
  std::fill_n(out.mutable_data(), out.size(), 0.0f);
  qvl::PositionGrid(table.data(), side, table.shape(1)).add_to(grids, merge, out.mutable_data());
  return out;
}

}  // namespace

void register_vision_model(py::module_& m) {
  py::enum_<qvl::NormKind>(m, "NormKind", "layer_norm (weight and bias) or rms_norm (weight)")
      .value("layer_norm", qvl::NormKind::LayerNorm)
      .value("rms_norm", qvl::NormKind::RmsNorm);
  py::enum_<qvl::VisionMlpKind>(m, "VisionMlpKind", "The ViT MLP: quick_gelu / gelu_tanh fc1-fc2, or swiglu gate-up-down")
      .value("quick_gelu", qvl::VisionMlpKind::QuickGelu)
      .value("swiglu", qvl::VisionMlpKind::SwiGlu)
      .value("gelu_tanh", qvl::VisionMlpKind::GeluTanh);

  py::class_<MergerSpec>(m, "MergerSpec", "A patch merger's norm and tensor names (model_spec.h)")
      .def(py::init<>())
      .def_readwrite("norm", &MergerSpec::norm)
      .def_readwrite("norm_after_merge", &MergerSpec::norm_after_merge)
      .def_readwrite("norm_name", &MergerSpec::norm_name)
      .def_readwrite("fc1_name", &MergerSpec::fc1_name)
      .def_readwrite("fc2_name", &MergerSpec::fc2_name);

  py::class_<VisionSpec>(m, "VisionSpec", "The vision encoder's sizes, variant and tensor names (model_spec.h); "
                                          "built by qvl_local.config")
      .def(py::init<>())
      .def_readwrite("hidden_size", &VisionSpec::hidden_size)
      .def_readwrite("intermediate_size", &VisionSpec::intermediate_size)
      .def_readwrite("num_layers", &VisionSpec::num_layers)
      .def_readwrite("num_heads", &VisionSpec::num_heads)
      .def_readwrite("patch_size", &VisionSpec::patch_size)
      .def_readwrite("temporal_patch_size", &VisionSpec::temporal_patch_size)
      .def_readwrite("spatial_merge_size", &VisionSpec::spatial_merge_size)
      .def_readwrite("merger_hidden_size", &VisionSpec::merger_hidden_size)
      .def_readwrite("out_hidden_size", &VisionSpec::out_hidden_size)
      .def_readwrite("layer_norm_eps", &VisionSpec::layer_norm_eps)
      .def_readwrite("rope_theta", &VisionSpec::rope_theta)
      .def_readwrite("block_norm", &VisionSpec::block_norm)
      .def_readwrite("mlp", &VisionSpec::mlp)
      .def_readwrite("fused_qkv", &VisionSpec::fused_qkv)
      .def_readwrite("patch_embed_names", &VisionSpec::patch_embed_names)
      .def_readwrite("patch_bias_name", &VisionSpec::patch_bias_name)
      .def_readwrite("position_embed_name", &VisionSpec::position_embed_name)
      .def_readwrite("window_size", &VisionSpec::window_size)
      .def_readwrite("full_attention_layers", &VisionSpec::full_attention_layers)
      .def_readwrite("merger", &VisionSpec::merger)
      .def_readwrite("deepstack_layers", &VisionSpec::deepstack_layers)
      .def_readwrite("deepstack_mergers", &VisionSpec::deepstack_mergers);

  py::class_<VisionEncoder>(m, "VisionModel", "The ViT, its patch merger and deepstack mergers over a GGUF")
      .def(py::init([](std::shared_ptr<qvl::GgufFile> gguf, const VisionSpec& spec, std::shared_ptr<qvl::ThreadPool> pool) {
             py::gil_scoped_release unlocked;  // the patch-embedding repack reads the whole tensor
             return std::make_unique<VisionEncoder>(std::move(gguf), spec, std::move(pool));
           }),
           py::arg("gguf"), py::arg("spec"), py::arg("pool"))
      .def_property_readonly("spec", &VisionEncoder::spec)
      .def_property_readonly("patch_values", &VisionEncoder::patch_values)
      .def_property_readonly("deepstack_taps", &VisionEncoder::deepstack_taps)
      .def("encode", &encode, py::arg("pixel_values"), py::arg("grid_thw"), py::kw_only(), py::arg("pre_merge") = false,
           py::arg("precision") = "exact",
           "pixel_values float32 (P, patch_values), grid_thw int64 (k, 3) -> float32 (P / 4, out_hidden), or with "
           "pre_merge=True the last ViT block's patch features (P, hidden)")
      .def("encode_features", &encode_features, py::arg("pixel_values"), py::arg("grid_thw"), py::kw_only(),
           py::arg("precision") = "exact",
           "float32 (P / 4, 1 + deepstack_taps, out_hidden): each token's embedding, then its deepstack features "
           "(the decoder's embeddings input)")
      .def("trace", &trace, py::arg("pixel_values"), py::arg("grid_thw"), py::kw_only(), py::arg("precision") = "exact",
           "The named activations of one encode: 'patch_embed', 'block.<i>', 'deepstack.<k>', 'merger', "
           "in the preprocessor's patch / token order");
  m.def("position_embedding", &position_embedding, py::arg("table"), py::arg("grid_thw"), py::arg("merge"),
        "Qwen3-VL's learned positions: table float32 (side * side, width) interpolated to each grid, in merge order");
  m.def("window_order", &window_order, py::arg("grid_thw"), py::arg("merge"), py::arg("window"),
        "Qwen2.5-VL's window layout: (token_order, window_bounds) for windows of `window` merged tokens");
}
