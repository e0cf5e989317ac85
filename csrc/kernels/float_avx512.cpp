// The Exact path's float GEMM on AVX-512 (also F16 / BF16 / F32 weights at any precision, on their
// dequantized rows): float_gemm.h's on 16-lane vectors, with a 32 x 12 register tile and a packer that
// transposes in registers.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <algorithm>

#include "kernels/float_gemm.h"
#include "kernels/kernel_table.h"
#include "simd/vec_avx512.h"

namespace qvl::avx512 {
namespace {

// Panels of 32 rows (two vectors; 16 when at most 16 rows are left, the caller's row granule). Per
// value, the two weight vectors meet 12 broadcast activations in 24 FMAs into 24 accumulators: 24 + 2
// + 1 of the 32 zmm registers, and two vector loads plus 12 broadcasts per 24 FMAs keep the load ports
// below the FMA ports' pace.
constexpr int kVector = Vec::kLanes;
constexpr int kGemmActs = 12;

// Transposes 16 x 16 floats: v[r] lane c becomes v[c] lane r. Each round interleaves rows j and
// j + 8 (lanes 0..7 of both into row 2j, lanes 8..15 into row 2j + 1): with the element's address
// written as its 4 row bits then its 4 lane bits, that rotates the address left by one bit, so four
// rounds swap the row and lane bits.
void transpose_16x16(__m512 (&v)[kVector]) {
  const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
#pragma GCC unroll 4
  for (int round = 0; round < 4; ++round) {
    __m512 next[kVector];
#pragma GCC unroll 8
    for (int j = 0; j < kVector / 2; ++j) {
      next[2 * j] = _mm512_permutex2var_ps(v[j], low, v[j + kVector / 2]);
      next[2 * j + 1] = _mm512_permutex2var_ps(v[j], high, v[j + kVector / 2]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < kVector; ++r) v[r] = next[r];
  }
}

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
