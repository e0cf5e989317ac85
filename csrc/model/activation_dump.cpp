#include "model/activation_dump.h"

#include <stdexcept>

namespace qvl {

void ActivationDump::record(const std::string& name, const float* data, int64_t rows, int64_t cols) {
  Entry* entry = nullptr;
  for (Entry& existing : entries_) {
    if (existing.name == name) entry = &existing;
  }
  if (entry == nullptr) {
    entries_.push_back(Entry{name, cols, {}});
    entry = &entries_.back();
  } else if (entry->cols != cols) {
    throw std::logic_error("activation '" + name + "' recorded with " + std::to_string(cols) + " columns after " +
                           std::to_string(entry->cols));
  }
  entry->values.insert(entry->values.end(), data, data + rows * cols);
}

}  // namespace qvl
