// GGUF tensor types, numbered as in the GGUF specification, and their block geometry.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qvl {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct TypeGeometry {
  const char* name;
  int64_t block_elems;  // values per block
  int64_t block_bytes;  // bytes per block
};

// Geometry of a type we can run, or nullptr for a type we cannot.
const TypeGeometry* type_geometry(GgmlType type);
bool is_runnable_type(GgmlType type);
// The weight types the kernels run, in the order the Python API lists them (ops.TYPES).
std::vector<GgmlType> runnable_types();
// The runnable type called `name` ("Q4_K"); throws std::invalid_argument naming the supported ones.
GgmlType parse_type(const std::string& name);
const char* type_name(GgmlType type);  // "Q4_K", or "type 42" for an unknown number
// Bytes in one row of `cols` values; throws std::invalid_argument when cols is not a whole number
// of blocks or the type is not runnable.
size_t row_bytes(GgmlType type, int64_t cols);

}  // namespace qvl
