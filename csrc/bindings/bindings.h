// One registration function per bound area; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

void register_gguf(pybind11::module_& m);          // bind_gguf.cpp: the GGUF reader and the format error
void register_ops(pybind11::module_& m);           // bind_ops.cpp: kernels for tests and power users
void register_text_model(pybind11::module_& m);    // bind_text.cpp: the decoder with its KV cache
void register_vision_model(pybind11::module_& m);  // bind_vision.cpp: the ViT and its mergers
// bind_model_ops.cpp: the model's ops (norms, activations, RoPE, softmax, attention) on numpy arrays,
// for the tests that hold each ISA to the scalar reference; register_ops calls it.
void register_model_ops(pybind11::module_& m);

namespace qvl {
class ThreadPool;
}
// The ops bindings' pools: one per thread count asked for (<= 0: the default), created on first use
// and kept, so no call starts threads after the first.
qvl::ThreadPool& pool_for(int n_threads);

#include "common/precision.h"
#include "model/activation_dump.h"

// "exact", "fast" or "int8", as the Python API spells the kernel precision (std::invalid_argument
// becomes ValueError).
using qvl::parse_precision;

// name -> float32 [rows, cols] array per recorded activation, in recording order (module.cpp).
pybind11::dict dump_to_dict(const qvl::ActivationDump& dump);
