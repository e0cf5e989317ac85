// A GGUF file opened for use: header and metadata parsed with every length and offset checked
// against the file size before anything is allocated from it, tensors left in the memory map.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ggml_types.h"
#include "kernels/kernels.h"
#include "gguf/mapped_file.h"

namespace qvl {

// Raised for anything wrong with a file's format; the message names the file and the problem.
class ModelFormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
  U64 = 10, I64 = 11, F64 = 12,
};

struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  GgufValueType element_type = GgufValueType::U8;  // for arrays
  // Scalars keep the widest representation of their kind; arrays keep one vector of that kind.
  int64_t int_value = 0;
  uint64_t uint_value = 0;
  double float_value = 0.0;
  std::string string_value;
  std::vector<int64_t> int_array;
  std::vector<uint64_t> uint_array;
  std::vector<double> float_array;
  std::vector<std::string> string_array;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous one
  uint64_t offset = 0;        // from the start of the file
  uint64_t nbytes = 0;
};

class GgufFile {
 public:
  static std::shared_ptr<GgufFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The tensor's bytes in the map; throws ModelFormatError naming a missing tensor.
  const GgufTensorInfo& tensor(const std::string& name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& info) const { return file_->data() + info.offset; }
  // A 2-D view (dims[0] = cols, product of the rest = rows) for the kernels.
  WeightView weight(const std::string& name) const;
  const MappedFile& mapped() const { return *file_; }

 private:
  explicit GgufFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
  void parse();

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace qvl
