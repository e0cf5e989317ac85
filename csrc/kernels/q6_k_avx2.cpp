// Q6_K on AVX2: dequantization and the Fast dot product against ActQ8_K, register-tiled over weight and activation rows.
// Levels are used unsigned (0..63) in maddubs; the offset of 32 is taken off once per super-block
// through the activation's 16-value sums times the sub-block scales.
#include "kernels/strict_fp.h"

#include "kernels/avx2_common.h"
#include "kernels/block32_dot_avx2.h"
#include "kernels/k_quant_avx2.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/vnni_panel.h"

namespace qvl::avx2 {
namespace {

// Lanes 0..7 = int16 lane 2t, lanes 8..15 = lane 2t + 1 of a vector holding 8 int16 in both halves:
// the scales of the two 16-value groups in a 32-value chunk.
inline __m256i pair_of_lanes(__m256i both_halves, int t) {
  auto lane = [](int i) { return _mm_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * i)); };
  return _mm256_shuffle_epi8(both_halves, _mm256_set_m128i(lane(2 * t + 1), lane(2 * t)));
}

// qh bit pair t (bits 2t, 2t + 1 of each byte) moved straight to bits 4, 5: one shift (none for t = 2)
// and one mask. The 16-bit shifts carry bits across the byte boundary only into bits the mask drops.
inline __m256i high_bits_at_4(__m256i qh, int t) {
  const __m256i pair_at_4 = _mm256_set1_epi8(0x30);
  if (t < 2) return _mm256_and_si256(_mm256_slli_epi16(qh, 4 - 2 * t), pair_at_4);
  if (t == 2) return _mm256_and_si256(qh, pair_at_4);
  return _mm256_and_si256(_mm256_srli_epi16(qh, 2), pair_at_4);
}

// Chunk t (0..3) of a 128-value half: low nibbles of ql0 / ql1, then high nibbles, with qh bit pair t.
inline __m256i chunk_levels(__m256i ql0, __m256i ql1, __m256i qh, int t) {
  const __m256i low_mask = _mm256_set1_epi8(0x0F);
  __m256i ql = t % 2 == 0 ? ql0 : ql1;
  __m256i low = t < 2 ? _mm256_and_si256(ql, low_mask) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), low_mask);
  return _mm256_or_si256(low, high_bits_at_4(qh, t));
}

struct Q6_KDot {
  // sums[c] = sum over the super-block of scale * m * (level - 32) * a, as 8 int32 lanes, for one
  // weight row; multipliers[c]: activation c's multiplier of each 16-value group (group_multipliers).
  template <int C>
  static void row_sums(const BlockQ6_K& block, const ActQ8_K* const (&a)[C], const __m256i (&multipliers)[C],
                       __m256i (&sums)[C]) {
    __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block.scales)));
    __m256i halves[C][2];  // scale * m (at most 128 * 16) of groups 0..7 and 8..15, in both 128-bit halves
    for (int c = 0; c < C; ++c) {
      __m256i scaled = _mm256_mullo_epi16(scales, multipliers[c]);
      halves[c][0] = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scaled));
      halves[c][1] = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(scaled, 1));
      // sum(scale * m * (q - 32) * a) = sum(scale * m * q * a) - 32 * sum(scale * m * group sum of a)
      __m256i offset = _mm256_madd_epi16(scaled, load32(a[c]->bsums));
      sums[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
    }
    for (int h = 0; h < 2; ++h) {
      __m256i ql0 = load32(block.ql + 64 * h), ql1 = load32(block.ql + 64 * h + 32);
      __m256i qh = load32(block.qh + 32 * h);
      for (int t = 0; t < 4; ++t) {
        __m256i levels = chunk_levels(ql0, ql1, qh, t);
        for (int c = 0; c < C; ++c) {
          __m256i chunk_scales = pair_of_lanes(halves[c][h], t);
          __m256i products = _mm256_maddubs_epi16(levels, load32(a[c]->qs + 128 * h + 32 * t));
          sums[c] = _mm256_add_epi32(sums[c], _mm256_madd_epi16(products, chunk_scales));
        }
      }
    }
  }

  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    static_assert(R == 1 || R == 4, "tiles of 1 or 4 weight rows");
    __m256 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / kBlockK; ++b) {
      const ActQ8_K* a[C];
      __m256i multipliers[C];
      for (int c = 0; c < C; ++c) {
        a[c] = reinterpret_cast<const ActQ8_K*>(act + c * act_stride) + b;
        multipliers[c] = group_multipliers(*a[c]);
      }
      if constexpr (R == 4) {
        // Four rows' sums packed into one vector (block32_dot_avx2.h): one conversion and FMA per activation row.
        __m256i sums[4][C];
        for (int r = 0; r < 4; ++r) {
          prefetch_ahead<sizeof(BlockQ6_K)>(w + r * w_stride, b);
          row_sums<C>(reinterpret_cast<const BlockQ6_K*>(w + r * w_stride)[b], a, multipliers, sums[r]);
        }
        __m256 d = four_row_halves<BlockQ6_K, &BlockQ6_K::d>(w, w_stride, b);
        for (int c = 0; c < C; ++c) {
          __m256i packed = pack_four_rows(sums[0][c], sums[1][c], sums[2][c], sums[3][c]);
          acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a[c]->d)), _mm256_cvtepi32_ps(packed), acc[c]);
        }
      } else {
        prefetch_ahead<sizeof(BlockQ6_K)>(w, b);
        const BlockQ6_K& block = reinterpret_cast<const BlockQ6_K*>(w)[b];
        __m256i sums[C];
        row_sums<C>(block, a, multipliers, sums);
        float d = _cvtsh_ss(block.d);
        for (int c = 0; c < C; ++c) {
          acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[c]->d), _mm256_cvtepi32_ps(sums[c]), acc[c]);
        }
      }
    }
    if constexpr (R == 4) {
      store_four_row_sums<C>(acc, out, out_stride);
    } else {
      for (int c = 0; c < C; ++c) out[c * out_stride] = horizontal_sum(acc[c]);
    }
  }
};

// Panel levels: the unsigned 6-bit levels in blocks of 16 (one scale each): scale d * sc, offset
// -32 * d * sc (both exact in float).
struct Q6_KPanel {
  static constexpr int kBlock = 16, kUnit = kBlockK, kFlush = 2;  // 2 * 2 * 63 * 127 < 32768
  static constexpr bool kSigned = false, kOffset = true;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const BlockQ6_K& block = reinterpret_cast<const BlockQ6_K*>(row)[unit];
    for (int h = 0; h < 2; ++h) {
      __m256i ql0 = load32(block.ql + 64 * h), ql1 = load32(block.ql + 64 * h + 32);
      __m256i qh = load32(block.qh + 32 * h);
      for (int t = 0; t < 4; ++t) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(levels + 128 * h + 32 * t), chunk_levels(ql0, ql1, qh, t));
      }
    }
    float d = _cvtsh_ss(block.d);
    for (int g = 0; g < kBlockK / 16; ++g) {
      scales[g] = d * static_cast<float>(block.scales[g]);
      offsets[g] = -32.0f * scales[g];
    }
  }
};

// x = (d * scale) * (q - 32); each 32-value chunk spans two 16-value scale groups.
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const BlockQ6_K& block = blocks[b];
    float d = _cvtsh_ss(block.d);
    for (int h = 0; h < 2; ++h) {
      __m256i ql0 = load32(block.ql + 64 * h), ql1 = load32(block.ql + 64 * h + 32);
      __m256i qh = load32(block.qh + 32 * h);
      for (int t = 0; t < 4; ++t) {
        __m256i levels = _mm256_sub_epi8(chunk_levels(ql0, ql1, qh, t), _mm256_set1_epi8(32));
        int group = 8 * h + 2 * t;
        float* out = dst + b * kBlockK + 16 * group;
        store_levels16(_mm256_castsi256_si128(levels), d * block.scales[group], -0.0f, out);
        store_levels16(_mm256_extracti128_si256(levels, 1), d * block.scales[group + 1], -0.0f, out + 16);
      }
    }
  }
}

}  // namespace

void pack_vnni_q6_k(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q6_KPanel, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void add_q6_k(IsaKernels& table) {
  set_type_kernels<Q6_KDot, Q6_KPanel>(table.q6_k, dequantize_q6_k, ActFormat::Q8_16);
}

}  // namespace qvl::avx2
