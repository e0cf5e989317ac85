// Q5_K on AVX2: dequantization and the Fast dot product, as Q4_K (q4_k_avx2.cpp) with each
// sub-block's fifth bit merged in from qh.
#include "kernels/strict_fp.h"

#include "kernels/avx2_common.h"
#include "kernels/k_quant_avx2.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/vnni_panel.h"

namespace qvl::avx2 {

namespace {

struct Q5_KDot {
  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    __m256 acc[R][C] = {};
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < k / kBlockK; ++b) {
      const ActQ8_K* a[C];
      __m128i a_sums[C];
      __m256i multipliers[C];
      for (int c = 0; c < C; ++c) {
        a[c] = reinterpret_cast<const ActQ8_K*>(act + c * act_stride) + b;
        a_sums[c] = sub_block_sums(*a[c]);
        multipliers[c] = sub_block_multipliers(*a[c]);
      }
      for (int r = 0; r < R; ++r) {
        prefetch_ahead<sizeof(BlockQ5_K)>(w + r * w_stride, b);
        const BlockQ5_K& block = reinterpret_cast<const BlockQ5_K*>(w + r * w_stride)[b];
        __m256i scales_mins = unpack_scales_mins(block.scales);
        __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));
        __m128i mins = _mm256_extracti128_si256(scales_mins, 1);
        __m256i qh = load32(block.qh);
        __m256i sums[C], scaled[C];  // scaled: sc * m, at most 63 * 16
        for (int c = 0; c < C; ++c) {
          sums[c] = _mm256_setzero_si256();
          scaled[c] = _mm256_mullo_epi16(scales, multipliers[c]);
        }
        for (int j = 0; j < 4; ++j) {
          __m256i packed = load32(block.qs + 32 * j);
          __m256i low = _mm256_or_si256(_mm256_and_si256(packed, low_mask), fifth_bit(qh, 2 * j));
          __m256i high =
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask), fifth_bit(qh, 2 * j + 1));
          for (int c = 0; c < C; ++c) {
            __m256i scale_low = broadcast_lane(scaled[c], 2 * j), scale_high = broadcast_lane(scaled[c], 2 * j + 1);
            __m256i p_low = _mm256_maddubs_epi16(low, load32(a[c]->qs + 64 * j));
            __m256i p_high = _mm256_maddubs_epi16(high, load32(a[c]->qs + 64 * j + 32));
            sums[c] = _mm256_add_epi32(sums[c], _mm256_add_epi32(_mm256_madd_epi16(p_low, scale_low),
                                                                 _mm256_madd_epi16(p_high, scale_high)));
          }
        }
        float d = _cvtsh_ss(block.d), dmin = _cvtsh_ss(block.dmin);
        for (int c = 0; c < C; ++c) {
          __m128i scaled_mins = _mm_mullo_epi16(mins, _mm256_castsi256_si128(multipliers[c]));
          __m256 offsets = _mm256_cvtepi32_ps(_mm256_zextsi128_si256(_mm_madd_epi16(scaled_mins, a_sums[c])));
          acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[c]->d), _mm256_cvtepi32_ps(sums[c]), acc[r][c]);
          acc[r][c] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * a[c]->d), offsets, acc[r][c]);
        }
      }
    }
    store_sums<R, C>(acc, out, out_stride);
  }
};

void dequantize_q5_k(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ5_K*>(src);
  const __m256i low_mask = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const BlockQ5_K& block = blocks[b];
    float d = _cvtsh_ss(block.d), dmin = _cvtsh_ss(block.dmin);
    __m256i qh = load32(block.qh);
    for (int j = 0; j < 4; ++j) {
      __m256i packed = load32(block.qs + 32 * j);
      __m256i levels[2] = {
          _mm256_or_si256(_mm256_and_si256(packed, low_mask), fifth_bit(qh, 2 * j)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask), fifth_bit(qh, 2 * j + 1))};
      for (int half = 0; half < 2; ++half) {
        int s = 2 * j + half;
        uint8_t scale, min;
        unpack_scale_min_k(block.scales, s, &scale, &min);
        store_levels32(levels[half], d * scale, -(dmin * min), dst + b * kBlockK + 32 * s);
      }
    }
  }
}

// Panel levels: as Q4_K's with the fifth bit merged in.
struct Q5_KPanel {
  static constexpr int kBlock = 32, kUnit = kBlockK, kFlush = 4;  // 4 * 2 * 31 * 127 < 32768
  static constexpr bool kSigned = false, kOffset = true;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const BlockQ5_K& block = reinterpret_cast<const BlockQ5_K*>(row)[unit];
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    __m256i qh = load32(block.qh);
    for (int j = 0; j < 4; ++j) {
      __m256i packed = load32(block.qs + 32 * j);
      __m256i low = _mm256_or_si256(_mm256_and_si256(packed, low_mask), fifth_bit(qh, 2 * j));
      __m256i high = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask), fifth_bit(qh, 2 * j + 1));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(levels + 64 * j), low);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(levels + 64 * j + 32), high);
    }
    sub_block_scales_offsets_k(block.scales, _cvtsh_ss(block.d), _cvtsh_ss(block.dmin), scales, offsets);
  }
};

}  // namespace

void pack_vnni_q5_k(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q5_KPanel, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void add_q5_k(IsaKernels& table) {
  set_type_kernels<Q5_KDot, Q5_KPanel>(table.q5_k, dequantize_q5_k);
}

}  // namespace qvl::avx2
