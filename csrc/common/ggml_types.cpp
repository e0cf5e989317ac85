#include "common/ggml_types.h"

#include <stdexcept>
#include <string>

namespace qvl {
namespace {

struct TypeEntry {
  GgmlType type;
  TypeGeometry geometry;
  bool runnable;  // a weight type the kernels run (Q8_1 and Q8_K exist only as activation formats)
};

// The one list of the types we know, runnable ones in the order the Python API lists them.
constexpr TypeEntry kTypes[] = {
    {GgmlType::F32, {"F32", 1, 4}, true},        {GgmlType::F16, {"F16", 1, 2}, true},
    {GgmlType::BF16, {"BF16", 1, 2}, true},      {GgmlType::Q8_0, {"Q8_0", 32, 34}, true},
    {GgmlType::Q4_0, {"Q4_0", 32, 18}, true},    {GgmlType::Q4_1, {"Q4_1", 32, 20}, true},
    {GgmlType::Q5_0, {"Q5_0", 32, 22}, true},    {GgmlType::Q5_1, {"Q5_1", 32, 24}, true},
    {GgmlType::Q4_K, {"Q4_K", 256, 144}, true},  {GgmlType::Q5_K, {"Q5_K", 256, 176}, true},
    {GgmlType::Q6_K, {"Q6_K", 256, 210}, true},  {GgmlType::Q8_1, {"Q8_1", 32, 36}, false},
    {GgmlType::Q8_K, {"Q8_K", 256, 292}, false},
};

const TypeEntry* find(GgmlType type) {
  for (const TypeEntry& entry : kTypes) {
    if (entry.type == type) return &entry;
  }
  return nullptr;
}

}  // namespace

const TypeGeometry* type_geometry(GgmlType type) {
  const TypeEntry* entry = find(type);
  return entry ? &entry->geometry : nullptr;
}

bool is_runnable_type(GgmlType type) {
  const TypeEntry* entry = find(type);
  return entry != nullptr && entry->runnable;
}

std::vector<GgmlType> runnable_types() {
  std::vector<GgmlType> types;
  for (const TypeEntry& entry : kTypes) {
    if (entry.runnable) types.push_back(entry.type);
  }
  return types;
}

GgmlType parse_type(const std::string& name) {
  std::string known;
  for (const TypeEntry& entry : kTypes) {
    if (!entry.runnable) continue;
    if (name == entry.geometry.name) return entry.type;
    known += (known.empty() ? "" : ", ") + std::string(entry.geometry.name);
  }
  throw std::invalid_argument("unsupported tensor type '" + name + "' (supported: " + known + ")");
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
