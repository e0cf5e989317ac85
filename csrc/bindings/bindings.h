// One registration function per bound area; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

void register_gguf(pybind11::module_& m);          // bind_gguf.cpp: the GGUF reader and the format error
void register_ops(pybind11::module_& m);           // bind_ops.cpp: kernels for tests and power users
void register_text_model(pybind11::module_& m);    // bind_text.cpp: the Qwen2 decoder with its KV cache
void register_vision_model(pybind11::module_& m);  // bind_vision.cpp: the ViT and the 2x2 merger

#include "common/precision.h"

// "exact", "fast" or "int8", as the Python API spells the kernel precision (std::invalid_argument
// becomes ValueError).
using qvl::parse_precision;
