// A read-only memory map of a whole file. Weights are used in place from these pages, never copied.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qvl {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws std::runtime_error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Tells the kernel the pages in [offset, offset + length) are no longer needed (after a repack).
  void release_pages(size_t offset, size_t length) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qvl
