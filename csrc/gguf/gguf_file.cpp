#include "gguf/gguf_file.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

namespace qvl {

namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// A declared size that runs past the end of the file means a truncated file when a real file could
// hold it, a corrupt one beyond this (no model's header holds a gigabyte of metadata).
constexpr uint64_t kPlausibleHeaderBytes = uint64_t(1) << 30;

// Names of the GGUF types we know of but cannot run, so an error can say what the file holds.
const char* known_type_name(uint32_t type) {
  switch (type) {
    case 10: return "Q2_K";
    case 11: return "Q3_K";
    case 16: return "IQ2_XXS";
    case 17: return "IQ2_XS";
    case 18: return "IQ3_XXS";
    case 19: return "IQ1_S";
    case 20: return "IQ4_NL";
    case 21: return "IQ3_S";
    case 22: return "IQ2_S";
    case 23: return "IQ4_XS";
    case 24: return "I8";
    case 25: return "I16";
    case 26: return "I32";
    case 27: return "I64";
    case 28: return "F64";
    case 29: return "IQ1_M";
    case 34: return "TQ1_0";
    case 35: return "TQ2_0";
    case 39: return "MXFP4";
    default: return nullptr;
  }
}

// Reads little-endian values from the map, checking each read against the end of the file.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, size_t size) : path_(path), data_(data), size_(size) {}

  size_t position() const { return position_; }
  size_t remaining() const { return size_ - position_; }

  [[noreturn]] void fail(const std::string& problem) const {
    throw ModelFormatError(path_ + ": " + problem + " (at byte " + std::to_string(position_) + ")");
  }

  [[noreturn]] void fail_truncated(uint64_t expected_size, const std::string& what) const {
    fail("file is truncated: " + std::to_string(size_) + " bytes, at least " + std::to_string(expected_size) +
         " expected (it ends inside " + what + ")");
  }

  void need(uint64_t bytes, const char* what) const {
    if (bytes > remaining()) fail_truncated(position_ + bytes, what);
  }

  // `count` items of at least `each` bytes (each > 0) are declared next: more than the file holds is
  // a truncated file, or an absurd value when no real file would hold that much.
  void need_items(uint64_t count, uint64_t each, const std::string& absurd_what, const std::string& what) const {
    if (count <= remaining() / each) return;
    if (count > kPlausibleHeaderBytes / each) fail("absurd " + absurd_what + " " + std::to_string(count) + " (" + what + ")");
    fail_truncated(position_ + count * each, what);
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_ + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* what) {
    uint64_t length = read<uint64_t>(what);
    need_items(length, 1, std::string("string length"), what);
    std::string text(reinterpret_cast<const char*>(data_ + position_), static_cast<size_t>(length));
    position_ += static_cast<size_t>(length);
    return text;
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

// Keys and tensor names end up in Python strings and error messages, so they must be valid UTF-8.
bool is_valid_utf8(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char lead = static_cast<unsigned char>(text[i]);
    size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) return false;
    }
    i += length;
  }
  return true;
}

std::string read_name(Cursor& cursor, const char* what) {
  std::string name = cursor.read_string(what);
  if (!is_valid_utf8(name)) cursor.fail(std::string(what) + " is not valid UTF-8");
  return name;
}

size_t scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::Bool: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
  }
}

bool is_signed_int(GgufValueType t) {
  return t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 || t == GgufValueType::I64;
}
bool is_unsigned_int(GgufValueType t) {
  return t == GgufValueType::U8 || t == GgufValueType::U16 || t == GgufValueType::U32 || t == GgufValueType::U64 ||
         t == GgufValueType::Bool;
}

// Reads one scalar of `type` into the value's int/uint/float slot.
void read_scalar(Cursor& cursor, GgufValueType type, int64_t& as_int, uint64_t& as_uint, double& as_float) {
  switch (type) {
    case GgufValueType::U8: as_uint = cursor.read<uint8_t>("a u8 value"); break;
    case GgufValueType::Bool: as_uint = cursor.read<uint8_t>("a bool value") != 0; break;
    case GgufValueType::I8: as_int = cursor.read<int8_t>("an i8 value"); break;
    case GgufValueType::U16: as_uint = cursor.read<uint16_t>("a u16 value"); break;
    case GgufValueType::I16: as_int = cursor.read<int16_t>("an i16 value"); break;
    case GgufValueType::U32: as_uint = cursor.read<uint32_t>("a u32 value"); break;
    case GgufValueType::I32: as_int = cursor.read<int32_t>("an i32 value"); break;
    case GgufValueType::U64: as_uint = cursor.read<uint64_t>("a u64 value"); break;
    case GgufValueType::I64: as_int = cursor.read<int64_t>("an i64 value"); break;
    case GgufValueType::F32: as_float = cursor.read<float>("an f32 value"); break;
    case GgufValueType::F64: as_float = cursor.read<double>("an f64 value"); break;
    default: cursor.fail("unknown metadata value type " + std::to_string(static_cast<uint32_t>(type)));
  }
}

GgufValue read_value(Cursor& cursor, const std::string& key) {
  GgufValue value;
  uint32_t raw_type = cursor.read<uint32_t>("a metadata value type");
  if (raw_type > static_cast<uint32_t>(GgufValueType::F64)) {
    cursor.fail("metadata key '" + key + "' has unknown value type " + std::to_string(raw_type));
  }
  value.type = static_cast<GgufValueType>(raw_type);
  if (value.type == GgufValueType::String) {
    value.string_value = cursor.read_string("a metadata string");
    return value;
  }
  if (value.type != GgufValueType::Array) {
    read_scalar(cursor, value.type, value.int_value, value.uint_value, value.float_value);
    return value;
  }
  uint32_t raw_element = cursor.read<uint32_t>("an array element type");
  if (raw_element > static_cast<uint32_t>(GgufValueType::F64) || raw_element == static_cast<uint32_t>(GgufValueType::Array)) {
    cursor.fail("metadata array '" + key + "' has unsupported element type " + std::to_string(raw_element));
  }
  value.element_type = static_cast<GgufValueType>(raw_element);
  uint64_t count = cursor.read<uint64_t>("an array length");
  // Every element takes at least one byte (a string at least its 8-byte length), so a count larger
  // than what is left of the file is refused before anything is reserved.
  uint64_t min_element = value.element_type == GgufValueType::String ? 8 : scalar_size(value.element_type);
  cursor.need_items(count, min_element, "array length", "metadata array '" + key + "'");
  size_t n = static_cast<size_t>(count);
  if (value.element_type == GgufValueType::String) {
    value.string_array.reserve(n);
    for (size_t i = 0; i < n; ++i) value.string_array.push_back(cursor.read_string("an array string"));
  } else {
    for (size_t i = 0; i < n; ++i) {
      int64_t as_int = 0;
      uint64_t as_uint = 0;
      double as_float = 0;
      read_scalar(cursor, value.element_type, as_int, as_uint, as_float);
      if (is_signed_int(value.element_type)) value.int_array.push_back(as_int);
      else if (is_unsigned_int(value.element_type)) value.uint_array.push_back(as_uint);
      else value.float_array.push_back(as_float);
    }
  }
  return value;
}

uint64_t checked_mul(uint64_t a, uint64_t b, const Cursor& cursor, const std::string& what) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) cursor.fail("absurd size of " + what);
  return a * b;
}

}  // namespace

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<MappedFile> mapped;
  try {
    mapped = std::make_unique<MappedFile>(path);
  } catch (const std::runtime_error& error) {
    throw ModelFormatError(error.what());
  }
  std::shared_ptr<GgufFile> file(new GgufFile(std::move(mapped)));
  file->parse();
  return file;
}

void GgufFile::parse() {
  const std::string& path = file_->path();
  Cursor cursor(path, file_->data(), file_->size());
  if (file_->size() < 24) cursor.fail("file is too small to be a GGUF file (" + std::to_string(file_->size()) + " bytes)");
  if (std::memcmp(file_->data(), "GGUF", 4) != 0) cursor.fail("not a GGUF file (bad magic)");
  cursor.read<uint32_t>("the magic");
  version_ = cursor.read<uint32_t>("the version");
  if (version_ != 2 && version_ != 3) cursor.fail("unsupported GGUF version " + std::to_string(version_) + " (2 and 3 are supported)");
  uint64_t tensor_count = cursor.read<uint64_t>("the tensor count");
  uint64_t kv_count = cursor.read<uint64_t>("the metadata count");
  // The smallest key/value is a 9-byte key length + type + 1-byte value; the smallest tensor record
  // an 8-byte name length, n_dims, one dim, type and offset.
  cursor.need_items(kv_count, 13, "metadata count", "the metadata entries");
  cursor.need_items(tensor_count, 32, "tensor count", "the tensor records");

  std::set<std::string> keys;
  uint64_t alignment = kDefaultAlignment;
  metadata_.reserve(static_cast<size_t>(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = read_name(cursor, "a metadata key");
    if (!keys.insert(key).second) cursor.fail("duplicate metadata key '" + key + "'");
    GgufValue value = read_value(cursor, key);
    if (key == "general.alignment") {
      if (value.type != GgufValueType::U32) cursor.fail("general.alignment must be a u32");
      alignment = value.uint_value;
      if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 20)) {
        cursor.fail("invalid general.alignment " + std::to_string(alignment));
      }
    }
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  tensors_.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info;
    info.name = read_name(cursor, "a tensor name");
    uint32_t n_dims = cursor.read<uint32_t>("a tensor's dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) {
      cursor.fail("tensor '" + info.name + "' has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = cursor.read<uint64_t>("a tensor dimension");
      if (dim == 0 || dim > (uint64_t(1) << 40)) cursor.fail("tensor '" + info.name + "' has absurd dimension " + std::to_string(dim));
      elements = checked_mul(elements, dim, cursor, "tensor '" + info.name + "'");
      info.dims.push_back(static_cast<int64_t>(dim));
    }
    uint32_t raw_type = cursor.read<uint32_t>("a tensor type");
    info.type = static_cast<GgmlType>(raw_type);
    if (!is_runnable_type(info.type)) {
      const char* known = known_type_name(raw_type);
      cursor.fail("tensor '" + info.name + "' has unsupported type " + (known ? std::string(known) : "number " + std::to_string(raw_type)));
    }
    const TypeGeometry* geometry = type_geometry(info.type);
    if (info.dims[0] % geometry->block_elems != 0) {
      cursor.fail("tensor '" + info.name + "' of type " + geometry->name + " has a row of " + std::to_string(info.dims[0]) +
                  " values, not a multiple of its block size " + std::to_string(geometry->block_elems));
    }
    info.nbytes = checked_mul(elements / geometry->block_elems, geometry->block_bytes, cursor, "tensor '" + info.name + "'");
    info.offset = cursor.read<uint64_t>("a tensor offset");
    if (tensor_index_.count(info.name)) cursor.fail("duplicate tensor name '" + info.name + "'");
    tensor_index_[info.name] = tensors_.size();
    tensors_.push_back(std::move(info));
  }

  // The data region. Writers pack the tensors one after another (each within `alignment` of the
  // previous end): packed data that ends past the end of the file is a truncated file; a tensor
  // placed elsewhere outside the file is a corrupt one.
  auto align_up = [alignment](uint64_t n) { return n > UINT64_MAX - alignment ? UINT64_MAX : (n + alignment - 1) / alignment * alignment; };
  auto end_of = [](const GgufTensorInfo* info) { return info->offset > UINT64_MAX - info->nbytes ? UINT64_MAX : info->offset + info->nbytes; };
  std::vector<GgufTensorInfo*> by_offset;
  for (GgufTensorInfo& info : tensors_) {
    if (info.offset % alignment != 0) cursor.fail("tensor '" + info.name + "' data offset is not aligned to " + std::to_string(alignment));
    by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  bool packed = true;
  uint64_t data_end = 0;  // from the start of the data region
  for (size_t i = 0; i < by_offset.size(); ++i) {
    if (i > 0 && by_offset[i]->offset < data_end) {
      cursor.fail("tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
    }
    packed = packed && by_offset[i]->offset <= align_up(data_end);
    data_end = end_of(by_offset[i]);
  }
  uint64_t data_start = align_up(cursor.position());
  uint64_t file_size = file_->size();
  uint64_t expected_size = data_end > UINT64_MAX - data_start ? UINT64_MAX : data_start + data_end;
  if (!tensors_.empty() && expected_size > file_size) {
    if (packed) cursor.fail_truncated(expected_size, "the tensor data");
    for (const GgufTensorInfo* info : by_offset) {
      if (end_of(info) > file_size - std::min(data_start, file_size)) {
        cursor.fail("tensor '" + info->name + "' data (offset " + std::to_string(info->offset) + ", " +
                    std::to_string(info->nbytes) + " bytes) lies outside the file: corrupt");
      }
    }
  }
  for (GgufTensorInfo& info : tensors_) info.offset += data_start;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto found = tensor_index_.find(name);
  return found == tensor_index_.end() ? nullptr : &tensors_[found->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* info = find_tensor(name);
  if (!info) throw ModelFormatError(path() + ": missing tensor '" + name + "'");
  return *info;
}

WeightView GgufFile::weight(const std::string& name) const {
  const GgufTensorInfo& info = tensor(name);
  WeightView view;
  view.type = info.type;
  view.cols = info.dims[0];
  view.rows = 1;
  for (size_t d = 1; d < info.dims.size(); ++d) view.rows *= info.dims[d];
  view.data = tensor_data(info);
  return view;
}

}  // namespace qvl
