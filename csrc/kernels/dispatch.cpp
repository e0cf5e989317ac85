// The per-ISA kernel tables: built once per ISA (common/isa_table.h) from the scalar references, with
// each ISA's fast variants laid over them.
#include "kernels/kernel_table.h"

#include <stdexcept>
#include <string>

#include "common/isa_table.h"
#include "kernels/blocks.h"
#include "kernels/int16_blocks.h"

namespace qvl {
namespace {

void add_layer(Isa layer, IsaKernels& table) {
  switch (layer) {
    case Isa::Scalar:
      scalar::add_float(table);
      scalar::add_q8_0(table);
      scalar::add_q4_0_q4_1(table);
      scalar::add_q5_0_q5_1(table);
      scalar::add_q4_k(table);
      scalar::add_q5_k(table);
      scalar::add_q6_k(table);
      scalar::add_act_quant(table);
      scalar::add_float_int16(table);
      break;
#if defined(QVL_HAVE_AVX2_BUILD)
    case Isa::Avx2:
      avx2::add_float(table);
      avx2::add_q8_0(table);
      avx2::add_q4_0_q4_1(table);
      avx2::add_q5_0_q5_1(table);
      avx2::add_q4_k(table);
      avx2::add_q5_k(table);
      avx2::add_q6_k(table);
      avx2::add_act_quant(table);
      scalar::keep_float_gemm_for_float_weights(table);
      break;
#endif
#if defined(QVL_HAVE_AVX512_BUILD)
    case Isa::Avx512:
      avx512::add_gemm(table);
      avx512::add_float(table);
      avx512::add_q4_0(table);
      avx512::add_q8_0(table);
      avx512::add_q4_k(table);
      avx512::add_q5_k(table);
      avx512::add_q6_k(table);
      avx512::add_float_int16(table);
      break;
#endif
#if defined(QVL_HAVE_AMX_BUILD)
    case Isa::Amx:
      amx::add_gemm(table);
      amx::add_q4_k(table);
      break;
#endif
#if defined(QVL_HAVE_NEON_BUILD)
    case Isa::Neon:
      neon::add_float(table);
      neon::add_q8_0(table);
      neon::add_q4_0_q4_1(table);
      neon::add_q5_0_q5_1(table);
      neon::add_q4_k(table);
      neon::add_q5_k(table);
      neon::add_q6_k(table);
      neon::add_act_quant(table);
      scalar::keep_float_gemm_for_float_weights(table);
      break;
#endif
    default:
      break;
  }
}

}  // namespace

const IsaKernels& isa_kernels(Isa isa) { return isa_table<IsaKernels>(isa, add_layer); }

const TypeKernels& type_kernels(const IsaKernels& table, GgmlType type) {
  switch (type) {
    case GgmlType::F32: return table.f32;
    case GgmlType::F16: return table.f16;
    case GgmlType::BF16: return table.bf16;
    case GgmlType::Q8_0: return table.q8_0;
    case GgmlType::Q4_0: return table.q4_0;
    case GgmlType::Q4_1: return table.q4_1;
    case GgmlType::Q5_0: return table.q5_0;
    case GgmlType::Q5_1: return table.q5_1;
    case GgmlType::Q4_K: return table.q4_k;
    case GgmlType::Q5_K: return table.q5_k;
    case GgmlType::Q6_K: return table.q6_k;
    default: throw std::invalid_argument(std::string("no kernels for tensor type ") + type_name(type));
  }
}

size_t act_row_bytes(ActFormat format, int64_t k) {
  switch (format) {
    case ActFormat::Q8_32: return static_cast<size_t>(k / kBlock32) * sizeof(ActQ8_32);
    case ActFormat::Q8_K: return static_cast<size_t>(k / kBlockK) * sizeof(ActQ8_K);
    case ActFormat::Q8_16: return static_cast<size_t>(k / 16) * sizeof(ActQ8_16);
    case ActFormat::I16_32: return int16_act_row_bytes(k);
    default: return static_cast<size_t>(k) * sizeof(float);
  }
}

QuantizeRowFn act_quantizer(const IsaKernels& table, ActFormat format) {
  switch (format) {
    case ActFormat::Q8_32: return table.quantize_act_q8_32;
    case ActFormat::Q8_K: return table.quantize_act_q8_k;
    case ActFormat::Q8_16: return table.quantize_act_q8_16;
    case ActFormat::I16_32: return table.quantize_act_i16_32;
    default: return nullptr;
  }
}

}  // namespace qvl
