#include <memory>

#include <pybind11/numpy.h>

#include "bindings/bindings.h"
#include "common/thread_pool.h"

namespace py = pybind11;

pybind11::dict dump_to_dict(const qvl::ActivationDump& dump) {
  py::dict named;
  for (const qvl::ActivationDump::Entry& entry : dump.entries()) {
    py::array_t<float> array({entry.rows(), entry.cols});
    std::copy(entry.values.begin(), entry.values.end(), array.mutable_data());
    named[py::str(entry.name)] = array;
  }
  return named;
}

namespace {

// The threads of one loaded model, shared by its decoder and its vision encoder.
void register_thread_pool(py::module_& m) {
  py::class_<qvl::ThreadPool, std::shared_ptr<qvl::ThreadPool>>(m, "ThreadPool",
                                                               "Worker threads a model's parts share")
      .def(py::init([](int n_threads) {
             return std::make_shared<qvl::ThreadPool>(n_threads > 0 ? n_threads : qvl::ThreadPool::default_threads());
           }),
           py::arg("n_threads") = 0, "n_threads <= 0 uses every core this process may run on")
      .def_property_readonly("size", &qvl::ThreadPool::size);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "qvl_local's C++ core: GGUF reading, CPU kernels, the Qwen-VL decoder and vision encoder";
  register_gguf(m);
  register_ops(m);
  register_thread_pool(m);
  register_text_model(m);
  register_vision_model(m);
}
