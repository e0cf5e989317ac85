// The per-ISA kernel tables: built once per ISA from the scalar references, with each ISA's fast
// variants laid over them.
#include "kernels/kernel_table.h"

#include <stdexcept>
#include <string>

#include "kernels/blocks.h"
#include "kernels/int16_blocks.h"

namespace qvl {
namespace {

void add_scalar(IsaKernels& table) {
  scalar::add_float(table);
  scalar::add_q8_0(table);
  scalar::add_q4_0_q4_1(table);
  scalar::add_q5_0_q5_1(table);
  scalar::add_q4_k(table);
  scalar::add_q5_k(table);
  scalar::add_q6_k(table);
  scalar::add_activations(table);
  scalar::add_float_int16(table);
}

IsaKernels build_table(Isa isa) {
  IsaKernels table;
  add_scalar(table);
#if defined(QVL_HAVE_AVX2_BUILD)
  if (runs_avx2_kernels(isa)) {
    avx2::add_float(table);
    avx2::add_q8_0(table);
    avx2::add_q4_0_q4_1(table);
    avx2::add_q5_0_q5_1(table);
    avx2::add_q4_k(table);
    avx2::add_q5_k(table);
    avx2::add_q6_k(table);
    avx2::add_activations(table);
    scalar::keep_float_gemm_for_float_weights(table);
  }
#endif
#if defined(QVL_HAVE_AVX512_BUILD)
  if (runs_avx512_kernels(isa)) {
    avx512::add_gemm(table);
    avx512::add_float(table);
    avx512::add_q4_0(table);
    avx512::add_q8_0(table);
    avx512::add_q4_k(table);
    avx512::add_q6_k(table);
    avx512::add_float_int16(table);
  }
#endif
#if defined(QVL_HAVE_AMX_BUILD)
  if (isa == Isa::Amx) {
    amx::add_gemm(table);
    amx::add_q4_k(table);
  }
#endif
#if defined(QVL_HAVE_NEON_BUILD)
  if (isa == Isa::Neon) {
    neon::add_float(table);
    neon::add_q8_0(table);
    neon::add_q4_0_q4_1(table);
    neon::add_q5_0_q5_1(table);
    neon::add_q4_k(table);
    neon::add_q5_k(table);
    neon::add_q6_k(table);
    neon::add_activations(table);
    scalar::keep_float_gemm_for_float_weights(table);
  }
#endif
  return table;
}

}  // namespace

const IsaKernels& isa_kernels(Isa isa) {
  static const IsaKernels scalar_table = build_table(Isa::Scalar);
  static const IsaKernels avx2_table = build_table(Isa::Avx2);
  static const IsaKernels avx512_table = build_table(Isa::Avx512);
  static const IsaKernels amx_table = build_table(Isa::Amx);
  static const IsaKernels neon_table = build_table(Isa::Neon);
  switch (isa) {
    case Isa::Avx2: return avx2_table;
    case Isa::Avx512: return avx512_table;
    case Isa::Amx: return amx_table;
    case Isa::Neon: return neon_table;
    default: return scalar_table;
  }
}

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
    case ActFormat::Q8_K_AS_32: return static_cast<size_t>(k / kBlock32) * sizeof(ActQ8_32);
    case ActFormat::Q8_K_AS_16: return static_cast<size_t>(k / 16) * sizeof(ActQ8_16);
    case ActFormat::I16_32: return int16_act_row_bytes(k);
    default: return static_cast<size_t>(k) * sizeof(float);
  }
}

QuantizeRowFn act_quantizer(const IsaKernels& table, ActFormat format) {
  switch (format) {
    case ActFormat::Q8_32: return table.quantize_act_q8_32;
    case ActFormat::Q8_K: return table.quantize_act_q8_k;
    case ActFormat::Q8_K_AS_32: return table.quantize_act_q8_k_as_32;
    case ActFormat::Q8_K_AS_16: return table.quantize_act_q8_k_as_16;
    case ActFormat::I16_32: return table.quantize_act_i16_32;
    default: return nullptr;
  }
}

}  // namespace qvl
