// One table of function pointers per ISA, built once from its layers (isa_layers) and kept: the
// scheme of both the kernel table (kernels/kernel_table.h) and the op table (ops/op_table.h).
#pragma once
#include <array>
#include <cstddef>

#include "common/isa.h"

namespace qvl {

// The table of `isa`; on first use the table of every ISA this CPU runs is built by add_layer(layer,
// table) over its layers in order, each layer overriding what the ones before it set. The others stay
// empty: a layer's add_layer is compiled for its ISA, and the compiler is free to store even function
// pointers with that ISA's instructions (AVX-512 stores killed the process on AVX2-only CPUs).
template <typename Table>
const Table& isa_table(Isa isa, void (*add_layer)(Isa layer, Table& table)) {
  static const std::array<Table, kIsaCount> tables = [add_layer] {
    std::array<Table, kIsaCount> built{};
    for (size_t i = 0; i < built.size(); ++i) {
      if (!isa_available(static_cast<Isa>(i))) continue;
      for (Isa layer : isa_layers(static_cast<Isa>(i))) add_layer(layer, built[i]);
    }
    return built;
  }();
  return tables[static_cast<size_t>(isa)];
}

}  // namespace qvl
