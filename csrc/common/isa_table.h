// One table of function pointers per ISA, built once from its layers (isa_layers) and kept: the
// scheme of both the kernel table (kernels/kernel_table.h) and the op table (ops/op_table.h).
#pragma once
#include <array>
#include <cstddef>

#include "common/isa.h"

namespace qvl {

// The table of `isa`; on first use every ISA's table is built by add_layer(layer, table) over its
// layers in order, each layer overriding what the ones before it set. Building only stores function
// pointers, so it runs nothing the CPU might lack.
template <typename Table>
const Table& isa_table(Isa isa, void (*add_layer)(Isa layer, Table& table)) {
  static const std::array<Table, kIsaCount> tables = [add_layer] {
    std::array<Table, kIsaCount> built{};
    for (size_t i = 0; i < built.size(); ++i) {
      for (Isa layer : isa_layers(static_cast<Isa>(i))) add_layer(layer, built[i]);
    }
    return built;
  }();
  return tables[static_cast<size_t>(isa)];
}

}  // namespace qvl
