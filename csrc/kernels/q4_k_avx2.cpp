// Q4_K on AVX2: dequantization and the Fast dot product against ActQ8_K, register-tiled over weight and activation rows.
// Per super-block the 6-bit scales and mins are unpacked once into int16 lanes; levels times
// activations accumulate in int32 (maddubs, then madd by the sub-block scale); the mins meet the
// activation's 32-value sums in one more madd.
#include "kernels/strict_fp.h"

#include "kernels/avx2_common.h"
#include "kernels/k_quant_avx2.h"
#include "kernels/block32_dot_avx2.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"

namespace qvl::avx2 {

namespace {

struct Q4_KDot {
  // sums[c] = sum over the super-block of sc[s] * level * a (8 int32 lanes), mins[c] = mn[s] * the
  // activation's sub-block sums (4 int32 lanes), for one weight row.
  template <int C>
  static void row_sums(const BlockQ4_K& block, const ActQ8_K* const (&a)[C], const __m128i (&a_sums)[C],
                       __m256i (&sums)[C], __m128i (&mins)[C]) {
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    __m256i scales_mins = unpack_scales_mins(block.scales);
    __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));
    __m128i row_mins = _mm256_extracti128_si256(scales_mins, 1);
    for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      __m256i packed = load32(block.qs + 32 * j);
      __m256i low = _mm256_and_si256(packed, low_mask);
      __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
      __m256i scale_low = broadcast_lane(scales, 2 * j), scale_high = broadcast_lane(scales, 2 * j + 1);
      for (int c = 0; c < C; ++c) {
        __m256i p_low = _mm256_maddubs_epi16(low, load32(a[c]->qs + 64 * j));
        __m256i p_high = _mm256_maddubs_epi16(high, load32(a[c]->qs + 64 * j + 32));
        sums[c] = _mm256_add_epi32(sums[c], _mm256_add_epi32(_mm256_madd_epi16(p_low, scale_low),
                                                             _mm256_madd_epi16(p_high, scale_high)));
      }
    }
    for (int c = 0; c < C; ++c) mins[c] = _mm_madd_epi16(row_mins, a_sums[c]);
  }

  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    static_assert(R == 1 || R == 4, "tiles of 1 or 4 weight rows");
    __m256 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / kBlockK; ++b) {
      prefetch_next_tile<R>(w, w_stride, b, sizeof(BlockQ4_K));
      const ActQ8_K* a[C];
      __m128i a_sums[C];
      for (int c = 0; c < C; ++c) {
        a[c] = reinterpret_cast<const ActQ8_K*>(act + c * act_stride) + b;
        a_sums[c] = sub_block_sums(*a[c]);
      }
      if constexpr (R == 4) {
        // Four rows' sums packed into one vector (block32_dot_avx2.h): one conversion and FMA per
        // activation row for the scaled levels, one for the mins.
        __m256i sums[4][C];
        __m128i mins[4][C];
        for (int r = 0; r < 4; ++r) {
          row_sums<C>(reinterpret_cast<const BlockQ4_K*>(w + r * w_stride)[b], a, a_sums, sums[r], mins[r]);
        }
        __m256 d = four_row_halves<BlockQ4_K, &BlockQ4_K::d>(w, w_stride, b);
        __m256 dmin = four_row_halves<BlockQ4_K, &BlockQ4_K::dmin>(w, w_stride, b);
        for (int c = 0; c < C; ++c) {
          __m256 a_scale = _mm256_set1_ps(a[c]->d);
          __m256i scaled = pack_four_rows(sums[0][c], sums[1][c], sums[2][c], sums[3][c]);
          // Mins: 4 lanes per row; one hadd round gives rows 0..3 in lanes 0..3, the upper half is zero.
          __m128i min_pairs = _mm_hadd_epi32(_mm_hadd_epi32(mins[0][c], mins[1][c]), _mm_hadd_epi32(mins[2][c], mins[3][c]));
          __m256 offsets = _mm256_cvtepi32_ps(_mm256_zextsi128_si256(min_pairs));
          acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, a_scale), _mm256_cvtepi32_ps(scaled), acc[c]);
          acc[c] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, a_scale), offsets, acc[c]);
        }
      } else {
        const BlockQ4_K& block = reinterpret_cast<const BlockQ4_K*>(w)[b];
        __m256i sums[C];
        __m128i mins[C];
        row_sums<C>(block, a, a_sums, sums, mins);
        float d = _cvtsh_ss(block.d), dmin = _cvtsh_ss(block.dmin);
        for (int c = 0; c < C; ++c) {
          __m256 offsets = _mm256_cvtepi32_ps(_mm256_zextsi128_si256(mins[c]));
          acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[c]->d), _mm256_cvtepi32_ps(sums[c]), acc[c]);
          acc[c] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * a[c]->d), offsets, acc[c]);
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

// Levels 0..15 are below 128, so the unsigned nibbles pass for int8; x = (d * sc) * q + -(dmin * mn).
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ4_K*>(src);
  const __m256i low_mask = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const BlockQ4_K& block = blocks[b];
    float d = _cvtsh_ss(block.d), dmin = _cvtsh_ss(block.dmin);
    for (int j = 0; j < 4; ++j) {
      __m256i packed = load32(block.qs + 32 * j);
      __m256i levels[2] = {_mm256_and_si256(packed, low_mask), _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask)};
      for (int half = 0; half < 2; ++half) {
        int s = 2 * j + half;
        uint8_t scale, min;
        unpack_scale_min_k(block.scales, s, &scale, &min);
        store_levels32(levels[half], d * scale, -(dmin * min), dst + b * kBlockK + 32 * s);
      }
    }
  }
}

// Panel levels: sub-block s's nibbles with scale d * sc[s] and offset -dmin * mn[s] (both exact in float).
struct Q4_KPanel {
  static constexpr int kBlock = 32, kUnit = kBlockK, kFlush = 8;  // 8 * 2 * 15 * 127 < 32768
  static constexpr bool kSigned = false, kOffset = true;
  static void decode(const uint8_t* row, int64_t unit, int8_t* levels, float* scales, float* offsets) {
    const BlockQ4_K& block = reinterpret_cast<const BlockQ4_K*>(row)[unit];
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    for (int j = 0; j < 4; ++j) {
      __m256i packed = load32(block.qs + 32 * j);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(levels + 64 * j), _mm256_and_si256(packed, low_mask));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(levels + 64 * j + 32),
                          _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask));
    }
    float d = _cvtsh_ss(block.d), dmin = _cvtsh_ss(block.dmin);
    for (int s = 0; s < 8; ++s) {
      uint8_t scale, min;
      unpack_scale_min_k(block.scales, s, &scale, &min);
      scales[s] = d * scale;
      offsets[s] = -(dmin * min);
    }
  }
};

}  // namespace

void add_q4_k(IsaKernels& table) {
  table.q4_k.dequantize_row = dequantize_q4_k;
  table.q4_k.dot_tile = dot_tile_tiled<Q4_KDot>;
  table.q4_k.gemm_tile = gemm_tile<Q4_KPanel>;
  table.q4_k.gemm_act_format = ActFormat::Q8_K_AS_32;
}

}  // namespace qvl::avx2
