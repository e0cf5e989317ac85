// The Exact path's float GEMM on AVX-512 (also F16 / BF16 / F32 weights at any precision, on their
// dequantized rows): float_gemm.h's on 16-lane vectors, with a 32 x 12 register tile and a packer that
// transposes in registers.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <algorithm>

#include "kernels/float_gemm.h"
#include "kernels/kernel_table.h"
#include "simd/vec_avx512.h"
#include "kernels/transpose_avx512.h"

namespace qvl::avx512 {
namespace {

// Panels of 32 rows (two vectors; 16 when at most 16 rows are left, the caller's row granule). Per
// value, the two weight vectors meet 12 broadcast activations in 24 FMAs into 24 accumulators: 24 + 2
// + 1 of the 32 zmm registers, and two vector loads plus 12 broadcasts per 24 FMAs keep the load ports
// below the FMA ports' pace.
constexpr int kVector = Vec::kLanes;
constexpr int kGemmActs = 12;


// Packs `rows` (at most 16) weight rows into the 16 lanes starting at panel + lane0 of each value's
// `width` floats, zeros in the lanes past `rows`: whole blocks of 16 values through a register
// transpose (a scalar transpose took a tenth of the GEMM's time), the remainder one by one.
void pack_rows_into_lanes(const float* w, size_t w_stride, int rows, int64_t k, float* panel, int width, int lane0) {
  int64_t i = 0;
  for (; i + kVector <= k; i += kVector) {
    __m512 v[kVector];
#pragma GCC unroll 16
    for (int r = 0; r < kVector; ++r) v[r] = r < rows ? _mm512_loadu_ps(w + r * w_stride + i) : _mm512_setzero_ps();
    transpose_16x16(v);
#pragma GCC unroll 16
    for (int j = 0; j < kVector; ++j) _mm512_storeu_ps(panel + (i + j) * width + lane0, v[j]);
  }
  for (; i < k; ++i) {
    float* column = panel + i * width + lane0;
    for (int r = 0; r < kVector; ++r) column[r] = r < rows ? w[r * w_stride + i] : 0.0f;
  }
}

void pack_panel(const float* w, size_t w_stride, int rows, int width, int64_t k, float* panel) {
  for (int lane0 = 0; lane0 < width; lane0 += kVector) {
    pack_rows_into_lanes(w + lane0 * w_stride, w_stride, std::min(rows - lane0, kVector), k, panel, width, lane0);
  }
}

}  // namespace

void add_float(IsaKernels& table) { table.float_gemm = simd::FloatGemm<Vec, 2, kGemmActs, pack_panel>::gemm; }

}  // namespace qvl::avx512
