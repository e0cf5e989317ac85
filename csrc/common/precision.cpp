#include "common/precision.h"

#include <stdexcept>

namespace qvl {
namespace {

constexpr Precision kPrecisions[] = {Precision::Exact, Precision::Fast, Precision::Int8};

}  // namespace

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::Exact: return "exact";
    case Precision::Fast: return "fast";
    case Precision::Int8: return "int8";
  }
  return "unknown";
}

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> list;
    for (Precision precision : kPrecisions) list.emplace_back(precision_name(precision));
    return list;
  }();
  return names;
}

Precision parse_precision(const std::string& name) {
  for (Precision precision : kPrecisions) {
    if (name == precision_name(precision)) return precision;
  }
  throw std::invalid_argument("precision must be 'exact', 'fast' or 'int8', got '" + name + "'");
}

}  // namespace qvl
