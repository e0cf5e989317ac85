// Q4_0 and Q4_1 on AVX2: dequantization and the Fast dot products, register-tiled over weight rows and activation rows.
#include "kernels/strict_fp.h"

#include "kernels/avx2_common.h"
#include "kernels/block32_dot_avx2.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/vnni_panel.h"

namespace qvl::avx2 {
namespace {

// Unsigned nibbles straight into maddubs; the zero point comes off in int16 as 8 * (a0 + a1) per pair,
// computed once per activation block for all rows. Each pair is then (n0 - 8) a0 + (n1 - 8) a1, at most
// 2 * 8 * 128 in magnitude, so even the sums of 16 values that four_row_sums forms stay exact in int16.
struct Q4_0Levels {
  using Block = BlockQ4_0;
  using Weight = __m256i;
  using Prepared = __m256i;
  static Prepared prepare(__m256i a_levels) { return _mm256_maddubs_epi16(_mm256_set1_epi8(8), a_levels); }
  static Weight load(const BlockQ4_0& block) { return split_nibbles(block.qs); }
  static __m256i pairs(Weight nibbles, __m256i a_levels, Prepared zero_point) {
    return _mm256_sub_epi16(_mm256_maddubs_epi16(nibbles, a_levels), zero_point);
  }
  static __m256i products(Weight nibbles, __m256i a_levels, Prepared zero_point) {
    return _mm256_madd_epi16(pairs(nibbles, a_levels, zero_point), _mm256_set1_epi16(1));
  }
  // pack_four_rows' layout with the first two rounds of adds in int16 (half the lanes of the int32
  // route per instruction) and a single widening madd at the end.
  static __m256i four_row_sums(const Weight (&w)[4], __m256i a_levels, Prepared zero_point) {
    __m256i rows01 = _mm256_hadd_epi16(pairs(w[0], a_levels, zero_point), pairs(w[1], a_levels, zero_point));
    __m256i rows23 = _mm256_hadd_epi16(pairs(w[2], a_levels, zero_point), pairs(w[3], a_levels, zero_point));
    return _mm256_madd_epi16(_mm256_hadd_epi16(rows01, rows23), _mm256_set1_epi16(1));
  }
};

// Q4_1's unsigned nibbles (the row-dot kernel is block32_dot_avx2.h's MinBlockDot).
struct Q4_1Decoder {
  using Block = BlockQ4_1;
  static __m256i levels(const Block& block) { return split_nibbles(block.qs); }
};

// Panel levels: the unsigned nibbles; the zero point of 8 (Q4_0) or the min (Q4_1) is the offset.
template <typename Block, bool HasMin>
struct Q4Panel {
  static constexpr int kBlock = 32, kUnit = 32, kFlush = 8;  // 8 * 2 * 15 * 127 < 32768
  static constexpr bool kSigned = false, kOffset = true;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const Block& block = reinterpret_cast<const Block*>(row)[unit];
    _mm256_store_si256(reinterpret_cast<__m256i*>(levels), split_nibbles(block.qs));
    scales[0] = _cvtsh_ss(block.d);
    if constexpr (HasMin) {
      offsets[0] = _cvtsh_ss(reinterpret_cast<const BlockQ4_1&>(block).m);
    } else {
      offsets[0] = -8.0f * scales[0];
    }
  }
};

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    __m256i levels = _mm256_sub_epi8(split_nibbles(blocks[b].qs), _mm256_set1_epi8(8));
    store_levels32(levels, _cvtsh_ss(blocks[b].d), -0.0f, dst + b * kBlock32);
  }
}

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < k / kBlock32; ++b) {
    store_levels32(split_nibbles(blocks[b].qs), _cvtsh_ss(blocks[b].d), _cvtsh_ss(blocks[b].m), dst + b * kBlock32);
  }
}

}  // namespace

void pack_vnni_q4_0(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q4Panel<BlockQ4_0, false>, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void pack_vnni_q4_1(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q4Panel<BlockQ4_1, true>, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void add_q4_0_q4_1(IsaKernels& table) {
  set_type_kernels<Block32Dot<Q4_0Levels>, Q4Panel<BlockQ4_0, false>>(table.q4_0, dequantize_q4_0);
  set_type_kernels<MinBlockDot<Q4_1Decoder>, Q4Panel<BlockQ4_1, true>>(table.q4_1, dequantize_q4_1);
}

}  // namespace qvl::avx2
