// The debug hook of every forward: named activations, recorded only when a caller asks for them, so
// one stage (a ViT block, the merger, a decoder layer) can be compared with a reference on its own.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qvl {

class ActivationDump {
 public:
  struct Entry {
    std::string name;
    int64_t cols = 0;
    std::vector<float> values;  // rows x cols, row-major
    int64_t rows() const { return cols == 0 ? 0 : static_cast<int64_t>(values.size()) / cols; }
  };

  // Appends rows x cols floats under `name`; a name recorded again gets the new rows after the old ones
  // (a prompt run in chunks yields one entry per layer).
  void record(const std::string& name, const float* data, int64_t rows, int64_t cols);
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;  // in recording order
};

// Records when a dump was asked for; costs one pointer test otherwise.
inline void record(ActivationDump* dump, const std::string& name, const float* data, int64_t rows, int64_t cols) {
  if (dump != nullptr) dump->record(name, data, rows, cols);
}

}  // namespace qvl
