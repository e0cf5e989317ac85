#include "common/ggml_types.h"

#include <stdexcept>
#include <string>

namespace qvl {

const TypeGeometry* type_geometry(GgmlType type) {
  static const TypeGeometry f32{"F32", 1, 4}, f16{"F16", 1, 2}, bf16{"BF16", 1, 2};
  static const TypeGeometry q4_0{"Q4_0", 32, 18}, q4_1{"Q4_1", 32, 20}, q5_0{"Q5_0", 32, 22},
      q5_1{"Q5_1", 32, 24}, q8_0{"Q8_0", 32, 34}, q8_1{"Q8_1", 32, 36};
  static const TypeGeometry q4_k{"Q4_K", 256, 144}, q5_k{"Q5_K", 256, 176}, q6_k{"Q6_K", 256, 210},
      q8_k{"Q8_K", 256, 292};
  switch (type) {
    case GgmlType::F32: return &f32;
    case GgmlType::F16: return &f16;
    case GgmlType::BF16: return &bf16;
    case GgmlType::Q4_0: return &q4_0;
    case GgmlType::Q4_1: return &q4_1;
    case GgmlType::Q5_0: return &q5_0;
    case GgmlType::Q5_1: return &q5_1;
    case GgmlType::Q8_0: return &q8_0;
    case GgmlType::Q8_1: return &q8_1;
    case GgmlType::Q4_K: return &q4_k;
    case GgmlType::Q5_K: return &q5_k;
    case GgmlType::Q6_K: return &q6_k;
    case GgmlType::Q8_K: return &q8_k;
    default: return nullptr;
  }
}

bool is_runnable_type(GgmlType type) {
  // Q8_1 and Q8_K exist only as activation formats inside the kernels, never as stored weights.
  return type_geometry(type) != nullptr && type != GgmlType::Q8_1 && type != GgmlType::Q8_K;
}

const char* type_name(GgmlType type) {
  const TypeGeometry* geometry = type_geometry(type);
  if (geometry) return geometry->name;
  thread_local std::string unknown;
  unknown = "type " + std::to_string(static_cast<uint32_t>(type));
  return unknown.c_str();
}

size_t row_bytes(GgmlType type, int64_t cols) {
  const TypeGeometry* geometry = type_geometry(type);
  if (!geometry) throw std::invalid_argument(std::string("unsupported tensor type ") + type_name(type));
  if (cols <= 0 || cols % geometry->block_elems != 0) {
    throw std::invalid_argument(std::string(geometry->name) + " rows need a multiple of " +
                                std::to_string(geometry->block_elems) + " values, got " + std::to_string(cols));
  }
  return static_cast<size_t>(cols / geometry->block_elems) * static_cast<size_t>(geometry->block_bytes);
}

}  // namespace qvl
