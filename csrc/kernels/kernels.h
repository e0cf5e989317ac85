// The kernel interface the model code uses. Everything here dispatches on the weight's GGUF type and
// on the active ISA (common/isa.h); the per-type code lives in one file per quant family
// (q8_0.cpp, q4_k.cpp, ...) with its ISA variants beside it (q8_0_avx2.cpp, q8_0_neon.cpp).
#pragma once
#include <cstdint>

#include "common/ggml_types.h"
#include "common/thread_pool.h"

namespace qvl {

// A 2-D matrix as GGUF stores it: `rows` rows of `cols` values (ggml ne0 = cols, ne1 = rows), each
// row row_bytes(type, cols) bytes, rows contiguous. For a linear layer, rows = out features.
struct WeightView {
  GgmlType type = GgmlType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
};

enum class Precision {
  Exact,  // float activations against the dequantized weights: reproduces the reference to ~1e-4
  // Activations quantized to 8-bit blocks and integer dot products, as llama.cpp does. Float weights
  // (F32/F16/BF16) in matrix-matrix products (n >= 16, k a multiple of 32) on ISAs with a 16-bit
  // multiply-accumulate (AVX-512 VNNI): weights and activations as 16-bit integer blocks
  // (int16_blocks.h), within ~1e-4 of float; elsewhere float math.
  Fast,
  // Fast, and in matrix-matrix products (n >= 16) float weights (F32/F16/BF16) too are multiplied as
  // 8-bit blocks: each row is encoded as Q8_0 on the fly (k a multiple of 32; other shapes stay
  // float). The quickest path for an F16 vision encoder, at the cost of Q8_0's weight rounding.
  Int8,
};

// out[r - first_row][c] = W[r][c] as float, for r in [first_row, first_row + n_rows).
void dequantize_rows(const WeightView& w, int64_t first_row, int64_t n_rows, float* out);

// Encodes n_rows rows of k floats as `type` (GGUF byte layout); out holds n_rows * row_bytes(type, k).
void quantize_rows(GgmlType type, const float* in, int64_t n_rows, int64_t k, uint8_t* out);

// out[i][r] = sum_c x[i][c] * W[r][c] for i < n, r < w.rows (x @ W^T, a linear layer without bias).
// x is n contiguous rows of w.cols floats; out is n contiguous rows of w.rows floats.
// Small n (decode) runs register-tiled row dot products; n >= 16 the matrix-matrix kernels where the ISA
// has them (int8 panels for Fast on quantized weights, a float GEMM for Exact and float weights).
void matmul(const WeightView& w, const float* x, int64_t n, float* out, Precision precision, ThreadPool& pool);

}  // namespace qvl
