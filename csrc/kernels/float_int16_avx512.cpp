// Float weights (F32 / F16 / BF16) under the Fast precision with many activation rows, on AVX-512 VNNI:
// weights and activations as 16-bit integer blocks (int16_blocks.h) multiplied by vpdpwssd, 32
// multiply-adds per instruction against the float GEMM's 16 per FMA. Measured on a Zen 5 core (one
// thread, 1024 activation rows, the ViT's shapes): 375-390 GOP/s, ~80% of vpdpwssd's peak there (2 per
// cycle); the rest is mostly each block's conversion of its int32 sums to float (the scales differ from
// block to block).
//
// Per k-slice of kInt16Slice values, each chunk of weight rows is encoded on the fly into 16-row panels
// (per block of 32 values: 16 vectors, vector g holding values 2g and 2g + 1 of the 16 rows, then the 16
// rows' scales), then pairs of panels meet the activation rows in 32 x 6 register tiles: per pair of
// values two panel vectors and 6 broadcast activation pairs, each feeding two vpdpwssd (one pair per
// vpdpwssd, as a 16 x 12 tile had it, ran ~12% slower); per block one int32 -> float conversion and one
// FMA per panel and activation row. The float operations per output are the scalar reference's
// (float_int16.cpp), so the results agree to the last bit.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/int16_blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_loop.h"
#include "kernels/transpose_avx512.h"

namespace qvl::avx512 {
namespace {

constexpr int kPanelRows = 16;
constexpr int kPairsPerBlock = kInt16Block / 2;
constexpr size_t kPanelLevelBytes = kPanelRows * kInt16Block * sizeof(int16_t);
constexpr size_t kPanelBlockBytes = kPanelLevelBytes + kPanelRows * sizeof(float);
// A register tile of kPanelsPerStep panels (32 weight rows) by kActRowsPerStep activation rows: 12 int32
// block sums + 12 float accumulators + 2 panel vectors and a broadcast, 27 of 32 registers; each
// broadcast activation pair feeds two vpdpwssd.
constexpr int kPanelsPerStep = 2;
constexpr int kActRowsPerStep = 6;

struct LoadF32 {
  static __m512 sixteen(const uint8_t* row, int64_t i) { return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + i); }
};

struct LoadF16 {
  static __m512 sixteen(const uint8_t* row, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i)));
  }
};

struct LoadBF16 {
  static __m512 sixteen(const uint8_t* row, int64_t i) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
};

// The 32 levels of the block x0 | x1 as one vector of int16 in value order; its scale goes to *d.
inline __m512i encode_block(__m512 x0, __m512 x1, float* d) {
  const ActivationScale scale = int16_scale(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1))));
  const __m512 inverse = _mm512_set1_ps(scale.inverse);
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m256i low = _mm512_cvtepi32_epi16(_mm512_cvt_roundps_epi32(_mm512_mul_ps(x0, inverse), kNearest));
  const __m256i high = _mm512_cvtepi32_epi16(_mm512_cvt_roundps_epi32(_mm512_mul_ps(x1, inverse), kNearest));
  *d = scale.d;
  return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

void quantize_act_i16_32(const float* src, uint8_t* dst, int64_t k) {
  auto* levels = reinterpret_cast<int16_t*>(dst);
  auto* scales = reinterpret_cast<float*>(dst + static_cast<size_t>(k) * sizeof(int16_t));
  for (int64_t b = 0; b < k / kInt16Block; ++b) {
    const float* x = src + b * kInt16Block;
    _mm512_storeu_si512(levels + b * kInt16Block, encode_block(_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16), scales + b));
  }
}

// Packs the blocks of values [k0, k0 + 32 * blocks) of `rows` (<= 16) weight rows into one panel, zeros
// (level and scale) in the rows past `rows`: each row's block encoded as one vector of 16 level pairs,
// then a 16 x 16 transpose of the pairs.
template <typename Load>
void pack_panel(const uint8_t* w, size_t w_stride, int rows, int64_t k0, int64_t blocks, uint8_t* panel) {
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* block = panel + b * kPanelBlockBytes;
    float scales[kPanelRows];
    __m512 pairs[kPanelRows];
    const int64_t i = k0 + b * kInt16Block;
    for (int r = 0; r < kPanelRows; ++r) {
      scales[r] = 0.0f;
      pairs[r] = r < rows ? _mm512_castsi512_ps(encode_block(Load::sixteen(w + r * w_stride, i),
                                                             Load::sixteen(w + r * w_stride, i + 16), &scales[r]))
                          : _mm512_setzero_ps();
    }
    transpose_16x16(pairs);
    for (int g = 0; g < kPairsPerBlock; ++g) _mm512_storeu_ps(reinterpret_cast<float*>(block + 64 * g), pairs[g]);
    std::memcpy(block + kPanelLevelBytes, scales, sizeof(scales));
  }
}

inline __m512i broadcast_pair(const int16_t* p) {
  int32_t pair;
  std::memcpy(&pair, p, sizeof(pair));
  return _mm512_set1_epi32(pair);
}

// out[c * out_stride + 16 q + r] (+)= the slice's sum for row r of panel q < P (panels panel_bytes
// apart; r below the rows in last_mask for the last panel) and activation row c < C. `levels` / `scales`
// point at the slice's first level and block scale of activation row 0; the rows are act_stride bytes
// apart. P panels share each broadcast activation pair.
template <int P, int C>
void panels_times_acts(int64_t blocks, const uint8_t* panel, size_t panel_bytes, const int16_t* levels,
                       const float* scales, size_t act_stride, float* out, size_t out_stride, __mmask16 last_mask,
                       bool accumulate) {
  const int16_t* x[C];
  const float* d[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    x[c] = reinterpret_cast<const int16_t*>(reinterpret_cast<const uint8_t*>(levels) + c * act_stride);
    d[c] = reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(scales) + c * act_stride);
  }
  __m512 acc[P][C];
#pragma GCC unroll 16
  for (int q = 0; q < P; ++q) {
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[q][c] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = panel + b * kPanelBlockBytes;
    const int64_t at = b * kInt16Block;
    __m512i sums[P][C];
#pragma GCC unroll 16
    for (int q = 0; q < P; ++q) {
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) sums[q][c] = _mm512_setzero_si512();
    }
#pragma GCC unroll 16
    for (int g = 0; g < kPairsPerBlock; ++g) {
      __m512i w[P];
#pragma GCC unroll 4
      for (int q = 0; q < P; ++q) w[q] = _mm512_loadu_si512(block + q * panel_bytes + 64 * g);
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m512i pair = broadcast_pair(x[c] + at + 2 * g);
#pragma GCC unroll 4
        for (int q = 0; q < P; ++q) sums[q][c] = _mm512_dpwssd_epi32(sums[q][c], w[q], pair);
      }
    }
#pragma GCC unroll 4
    for (int q = 0; q < P; ++q) {
      const __m512 w_scales = _mm512_loadu_ps(reinterpret_cast<const float*>(block + q * panel_bytes + kPanelLevelBytes));
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        acc[q][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[q][c]), _mm512_mul_ps(w_scales, _mm512_set1_ps(d[c][b])),
                                    acc[q][c]);
      }
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q) {
    const __mmask16 mask = q == P - 1 ? last_mask : static_cast<__mmask16>(0xFFFF);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      float* o = out + c * out_stride + q * kPanelRows;
      const __m512 sum = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), acc[q][c]) : acc[q][c];
      _mm512_mask_storeu_ps(o, mask, sum);
    }
  }
}

// The calling thread's panel memory, reused across calls.
uint8_t* panel_buffer(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

// Activation rows per pass over the chunk's panels: their levels for one k-slice (2 KB a row) and their
// outputs for the chunk (at most 64 rows: 256 bytes a row) stay in L2 while every slice and panel
// meets them, so each output is written to memory once and each activation level read from it once.
constexpr int64_t kActBlockRows = 16 * kActRowsPerStep;

template <typename Load>
void int16_gemm_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                     size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  const int64_t n_panels = (n_rows + kPanelRows - 1) / kPanelRows;
  const int64_t n_slices = (k + kInt16Slice - 1) / kInt16Slice;
  const size_t panel_bytes = static_cast<size_t>(kInt16Slice / kInt16Block) * kPanelBlockBytes;
  const size_t slice_bytes = panel_bytes * static_cast<size_t>(n_panels);
  uint8_t* panels = panel_buffer(slice_bytes * static_cast<size_t>(n_slices));
  for (int64_t s = 0; s < n_slices; ++s) {
    const int64_t k0 = s * kInt16Slice, blocks = std::min(kInt16Slice, k - k0) / kInt16Block;
    auto pack = [&](const uint8_t* rows_w, size_t stride, int rows, int64_t, uint8_t* panel) {
      pack_panel<Load>(rows_w, stride, rows, k0, blocks, panel);
    };
    pack_panels<kPanelRows>(pack, panels + s * slice_bytes, w, w_stride, n_rows, k, panel_bytes);
  }
  const int16_t* levels = int16_act_levels(act);
  const float* scales = int16_act_scales(act, k);
  for (int64_t j0 = 0; j0 < n_act; j0 += kActBlockRows) {
    const int64_t j_end = std::min(n_act, j0 + kActBlockRows);
    for (int64_t s = 0; s < n_slices; ++s) {
      const int64_t k0 = s * kInt16Slice, blocks = std::min(kInt16Slice, k - k0) / kInt16Block;
      for_each_act_group<kActRowsPerStep>(j0, j_end, [&](auto tile, int64_t first) {
        const size_t row = static_cast<size_t>(first) * act_stride;
        const auto* tile_levels = reinterpret_cast<const int16_t*>(reinterpret_cast<const uint8_t*>(levels + k0) + row);
        const auto* tile_scales =
            reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(scales + k0 / kInt16Block) + row);
        auto run = [&](auto panels_at_once, int64_t p) {
          constexpr int kPanels = decltype(panels_at_once)::value;
          const int last_rows =
              static_cast<int>(std::min<int64_t>(kPanelRows, n_rows - (p + kPanels - 1) * kPanelRows));
          panels_times_acts<kPanels, decltype(tile)::value>(
              blocks, panels + s * slice_bytes + p * panel_bytes, panel_bytes, tile_levels, tile_scales, act_stride,
              out + first * out_stride + p * kPanelRows, out_stride, static_cast<__mmask16>((1u << last_rows) - 1),
              s > 0);
        };
        int64_t p = 0;
        for (; p + kPanelsPerStep <= n_panels; p += kPanelsPerStep) run(std::integral_constant<int, kPanelsPerStep>(), p);
        for (; p < n_panels; ++p) run(std::integral_constant<int, 1>(), p);
      });
    }
  }
}

}  // namespace

void add_float_int16(IsaKernels& table) {
  table.quantize_act_i16_32 = quantize_act_i16_32;
  table.f32.int16_gemm_tile = int16_gemm_tile<LoadF32>;
  table.f16.int16_gemm_tile = int16_gemm_tile<LoadF16>;
  table.bf16.int16_gemm_tile = int16_gemm_tile<LoadBF16>;
}

}  // namespace qvl::avx512
