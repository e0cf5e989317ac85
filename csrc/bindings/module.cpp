#include "bindings/bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "qvl_local's C++ core: GGUF reading, CPU kernels, the Qwen2-VL decoder and vision encoder";
  register_gguf(m);
  register_ops(m);
  register_text_model(m);
  register_vision_model(m);
}
