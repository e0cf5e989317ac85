// The per-ISA op tables: built once per ISA (common/isa_table.h) from the scalar references, with each
// ISA's vector variants laid over them.
#include "ops/op_table.h"

#include "common/isa_table.h"

namespace qvl {
namespace {

void add_layer(Isa layer, IsaOps& table) {
  switch (layer) {
    case Isa::Scalar:
      scalar::add_norms(table);
      scalar::add_activations(table);
      scalar::add_rope(table);
      scalar::add_softmax(table);
      scalar::add_causal_attention(table);
      scalar::add_vision_attention(table);
      break;
#if defined(QVL_HAVE_AVX2_BUILD)
    case Isa::Avx2:
      avx2::add_ops(table);
      break;
#endif
#if defined(QVL_HAVE_AVX512_BUILD)
    case Isa::Avx512:
      avx512::add_ops(table);
      avx512::add_int8_vision_attention(table);
      avx512::add_int16_vision_attention(table);
      break;
#endif
#if defined(QVL_HAVE_NEON_BUILD)
    case Isa::Neon:
      neon::add_ops(table);
      break;
#endif
    default:  // amx adds no ops of its own: it runs avx512's
      break;
  }
}

}  // namespace

const IsaOps& isa_ops(Isa isa) { return isa_table<IsaOps>(isa, add_layer); }

}  // namespace qvl
