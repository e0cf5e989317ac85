// One registration function per bound area; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

void register_gguf(pybind11::module_& m);          // bind_gguf.cpp: the GGUF reader and the format error
void register_ops(pybind11::module_& m);           // bind_ops.cpp: kernels for tests and power users
void register_text_model(pybind11::module_& m);    // bind_text.cpp: the decoder with its KV cache
void register_vision_model(pybind11::module_& m);  // bind_vision.cpp: the ViT and its mergers

#include <stdexcept>
#include <string>

#include "kernels/kernels.h"
#include "model/activation_dump.h"

// "exact", "fast" or "int8", as the Python API spells the kernel precision.
inline qvl::Precision parse_precision(const std::string& name) {
  if (name == "exact") return qvl::Precision::Exact;
  if (name == "fast") return qvl::Precision::Fast;
  if (name == "int8") return qvl::Precision::Int8;
  throw std::invalid_argument("precision must be 'exact', 'fast' or 'int8', got '" + name + "'");
}

// name -> float32 [rows, cols] array per recorded activation, in recording order (module.cpp).
pybind11::dict dump_to_dict(const qvl::ActivationDump& dump);
