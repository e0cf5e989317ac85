// The per-type kernel table the dispatcher picks from: one entry per GGUF type and ISA, in the spirit
// of ggml's type traits {to_float, from_float, vec_dot}. Each quant family provides a scalar reference
// (q4_k.cpp) and may provide ISA variants with the same signatures (q4_k_avx2.cpp, q4_k_neon.cpp);
// a missing variant falls back to the scalar one.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/ggml_types.h"
#include "common/isa.h"

namespace qvl {

// dst[0 .. k) = the k values of one row stored at src.
using DequantizeRowFn = void (*)(const uint8_t* src, float* dst, int64_t k);
// Encodes k floats as one row at dst (weights in GGUF layout, or activation blocks).
using QuantizeRowFn = void (*)(const float* src, uint8_t* dst, int64_t k);
// out[j * out_stride + r] = dot(weight row r, activation row j) for r < n_rows, j < n_act. Rows of the
// weight are w_stride bytes apart, rows of the activation act_stride bytes apart, each k values long.
using DotTileFn = void (*)(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                           size_t act_stride, int64_t n_act, float* out, size_t out_stride);

// What the weight's Fast dot product wants the activations converted to.
enum class ActFormat {
  Float,  // plain float rows (float weights)
  Q8_32,  // ActQ8_32 blocks (the 32-value types)
  Q8_K,   // ActQ8_K super-blocks (the K-quants' row-dot kernels: a multiple of one base per sub-block)
  Q8_16,  // ActQ8_16 blocks, a scale per 16 values (Q6_K's matrix-matrix kernels)
  I16_32,  // int16 levels with a float scale per 32 values (int16_blocks.h): float weights' Fast GEMM
};

struct TypeKernels {
  DequantizeRowFn dequantize_row = nullptr;
  QuantizeRowFn quantize_row = nullptr;  // weight encoder (Q8_0's also runs on the fly: Precision::Int8)
  ActFormat act_format = ActFormat::Float;
  DotTileFn dot_tile = nullptr;  // against act_format rows
  // Matrix-matrix variant for many activation rows (Fast, and for float weights Int8 only: they are
  // encoded as Q8_0 blocks on the fly; null where the ISA has none): converts
  // the weight rows once into an interleaved int8 panel, then runs a register-tiled GEMM against all
  // n_act rows given (it tiles them itself).
  DotTileFn gemm_tile = nullptr;
  ActFormat gemm_act_format = ActFormat::Q8_32;
  // Fast on float weights (F32/F16/BF16) for many activation rows: the weight rows encoded on the fly as
  // 16-bit integer blocks against ActFormat::I16_32 rows (int16_blocks.h). Null where the float GEMM
  // serves instead (ISAs without a 16-bit multiply-accumulate into int32).
  DotTileFn int16_gemm_tile = nullptr;
};

// out[j * out_stride + r] (+)= sum_{i < k} w[r * w_stride + i] * x[j * x_stride + i] for r < n_rows, j < n:
// a float GEMM over one k-slice of already dequantized weight rows (strides in floats). `accumulate`
// adds to out (later k-slices) instead of overwriting it.
using FloatGemmFn = void (*)(int64_t k, const float* w, size_t w_stride, int64_t n_rows, const float* x,
                             size_t x_stride, int64_t n, float* out, size_t out_stride, bool accumulate);

struct IsaKernels {
  TypeKernels f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k;
  QuantizeRowFn quantize_act_q8_32 = nullptr;
  QuantizeRowFn quantize_act_q8_k = nullptr;
  QuantizeRowFn quantize_act_q8_16 = nullptr;
  QuantizeRowFn quantize_act_i16_32 = nullptr;
  FloatGemmFn float_gemm = nullptr;  // null where the ISA has none: the float dot_tile serves instead
};

// The table's activation quantizer for `format` (Float has none: null).
QuantizeRowFn act_quantizer(const IsaKernels& table, ActFormat format);

// The table of an ISA, complete (scalar entries fill what the ISA does not provide).
const IsaKernels& isa_kernels(Isa isa);
// The entry of `type` in that table; throws std::invalid_argument for a type we cannot run.
const TypeKernels& type_kernels(const IsaKernels& table, GgmlType type);
size_t act_row_bytes(ActFormat format, int64_t k);

// Each family file adds its functions to a table: the scalar files every entry, the ISA files what they
// speed up. The dispatcher starts an ISA's table from the scalar one and lets the ISA files override.
namespace scalar {
void add_float(IsaKernels& table);
void add_q8_0(IsaKernels& table);
void add_q4_0_q4_1(IsaKernels& table);
void add_q5_0_q5_1(IsaKernels& table);
void add_q4_k(IsaKernels& table);
void add_q5_k(IsaKernels& table);
void add_q6_k(IsaKernels& table);
void add_act_quant(IsaKernels& table);
void add_float_int16(IsaKernels& table);  // the reference of the 16-bit integer GEMM of float weights
// Takes the 16-bit GEMM of float weights out of a table (AVX2, NEON: without vpdpwssd the integer
// products cost as much as FMAs, so the float GEMM stays, at no loss of speed or accuracy).
void keep_float_gemm_for_float_weights(IsaKernels& table);
}  // namespace scalar

#if defined(QVL_HAVE_AVX2_BUILD)
namespace avx2 {
void add_float(IsaKernels& table);
void add_q8_0(IsaKernels& table);
void add_q4_0_q4_1(IsaKernels& table);
void add_q5_0_q5_1(IsaKernels& table);
void add_q4_k(IsaKernels& table);
void add_q5_k(IsaKernels& table);
void add_q6_k(IsaKernels& table);
void add_act_quant(IsaKernels& table);
}  // namespace avx2
#endif

#if defined(QVL_HAVE_AVX512_BUILD)
namespace avx512 {  // laid over the avx2 table
void add_gemm(IsaKernels& table);
void add_float(IsaKernels& table);
void add_q4_0(IsaKernels& table);  // decode (row-dot) kernels
void add_q8_0(IsaKernels& table);
void add_q4_k(IsaKernels& table);
void add_q5_k(IsaKernels& table);
void add_q6_k(IsaKernels& table);
void add_float_int16(IsaKernels& table);
}  // namespace avx512
#endif

#if defined(QVL_HAVE_AMX_BUILD)
namespace amx {  // laid over the avx512 table
void add_gemm(IsaKernels& table);
void add_q4_k(IsaKernels& table);  // its own super-block GEMM, over add_gemm's
}  // namespace amx
#endif

#if defined(QVL_HAVE_NEON_BUILD)
namespace neon {
void add_float(IsaKernels& table);
void add_q8_0(IsaKernels& table);
void add_q4_0_q4_1(IsaKernels& table);
void add_q5_0_q5_1(IsaKernels& table);
void add_q4_k(IsaKernels& table);
void add_q5_k(IsaKernels& table);
void add_q6_k(IsaKernels& table);
void add_act_quant(IsaKernels& table);
}  // namespace neon
#endif

}  // namespace qvl
