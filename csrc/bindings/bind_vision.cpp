// The vision encoder for Python: numpy pixel rows and grids in, embeddings out, GIL released while
// it computes. Bad shapes raise ValueError before any work starts.
#include <memory>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "common/thread_pool.h"
#include "gguf/gguf_file.h"
#include "model/vision_encoder.h"

namespace py = pybind11;

namespace {

// Owns the pool its encoder runs on, so the pair lives and dies together.
class VisionModel {
 public:
  VisionModel(std::shared_ptr<qvl::GgufFile> file, const qvl::VisionHyperParams& params, int n_threads)
      : pool_(std::make_unique<qvl::ThreadPool>(n_threads > 0 ? n_threads : qvl::ThreadPool::default_threads())),
        encoder_(std::move(file), params, pool_.get()) {}

  const qvl::VisionEncoder& encoder() const { return encoder_; }
  int n_threads() const { return pool_->size(); }

 private:
  std::unique_ptr<qvl::ThreadPool> pool_;
  qvl::VisionEncoder encoder_;
};

int64_t int_param(const py::dict& params, const char* key) {
  if (!params.contains(key)) throw py::value_error(std::string("vision params: missing '") + key + "'");
  return params[key].cast<int64_t>();
}

qvl::VisionHyperParams params_from_dict(const py::dict& params) {
  qvl::VisionHyperParams p;
  p.hidden_size = int_param(params, "hidden_size");
  p.intermediate_size = int_param(params, "intermediate_size");
  p.num_layers = int_param(params, "num_layers");
  p.num_heads = int_param(params, "num_heads");
  p.patch_size = int_param(params, "patch_size");
  p.temporal_patch_size = int_param(params, "temporal_patch_size");
  p.spatial_merge_size = int_param(params, "spatial_merge_size");
  p.merger_hidden_size = int_param(params, "merger_hidden_size");
  p.out_hidden_size = int_param(params, "out_hidden_size");
  if (!params.contains("layer_norm_eps")) throw py::value_error("vision params: missing 'layer_norm_eps'");
  p.layer_norm_eps = params["layer_norm_eps"].cast<float>();
  return p;
}

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

py::array_t<float> encode(const VisionModel& model, const FloatRows& pixel_values, const IntRows& grid_thw,
                          bool pre_merge, const std::string& precision_name) {
  const qvl::VisionEncoder& encoder = model.encoder();
  if (pixel_values.ndim() != 2) {
    throw py::value_error("pixel_values must be 2-D (patches, " + std::to_string(encoder.patch_values()) +
                          "), got " + std::to_string(pixel_values.ndim()) + " dimensions");
  }
  const qvl::Precision precision = parse_precision(precision_name);
  const std::vector<qvl::GridThw> grids = grids_from_array(grid_thw);
  const int64_t n_patches = pixel_values.shape(0);
  encoder.validate(n_patches, pixel_values.shape(1), grids);
  py::array_t<float> result({encoder.output_rows(n_patches, pre_merge), encoder.output_width(pre_merge)});
  const float* pixels = pixel_values.data();
  float* out = result.mutable_data();
  {
    py::gil_scoped_release unlocked;
    encoder.encode(pixels, n_patches, grids, pre_merge, precision, out);
  }
  return result;
}

}  // namespace

void register_vision_model(py::module_& m) {
  py::class_<VisionModel>(m, "VisionModel", "Qwen2-VL's ViT and 2x2 patch merger over an mmproj GGUF")
      .def(py::init([](std::shared_ptr<qvl::GgufFile> gguf, const py::dict& params, int n_threads) {
             qvl::VisionHyperParams hyper = params_from_dict(params);
             py::gil_scoped_release unlocked;  // the patch-embedding repack reads the whole tensor
             return std::make_unique<VisionModel>(std::move(gguf), hyper, n_threads);
           }),
           py::arg("gguf"), py::arg("params"), py::arg("n_threads") = 0,
           "params: VisionConfig's fields (dataclasses.asdict); n_threads <= 0 uses every available core")
      .def_property_readonly("n_threads", &VisionModel::n_threads)
      .def_property_readonly("patch_values", [](const VisionModel& m) { return m.encoder().patch_values(); })
      .def("encode", &encode, py::arg("pixel_values"), py::arg("grid_thw"), py::kw_only(), py::arg("pre_merge") = false,
           py::arg("precision") = "exact",
           "pixel_values float32 (P, 1176), grid_thw int64 (k, 3) -> float32 (P / 4, out_hidden), or with "
           "pre_merge=True the last ViT block's patch features (P, hidden)");
}
