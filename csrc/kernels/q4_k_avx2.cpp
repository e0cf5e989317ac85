// Q4_K on AVX2: dequantization and the Fast dot product against ActQ8_K, register-tiled over weight and activation rows.
// Per super-block the 6-bit scales and mins are unpacked once into int16 lanes and multiplied by the
// activation's sub-block multipliers; levels times activations accumulate in int32 (maddubs, then madd
// by the scale); the mins meet the activation's 32-value sums in one more madd.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/avx2_common.h"
#include "kernels/k_quant_avx2.h"
#include "kernels/block32_dot_avx2.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_avx2.h"
#include "kernels/vnni_panel.h"

namespace qvl::avx2 {

namespace {

// int16 lanes 0..7 of each half = the 8 scales (bytes 0..7).
inline __m256i widen_scales(__m256i bytes) {
  return _mm256_shuffle_epi8(bytes, _mm256_broadcastsi128_si256(_mm_setr_epi8(0, -128, 1, -128, 2, -128, 3, -128, 4,
                                                                              -128, 5, -128, 6, -128, 7, -128)));
}

// int16 lanes 0..7 of each half = the 8 mins (bytes 8..15).
inline __m256i widen_mins(__m256i bytes) {
  return _mm256_shuffle_epi8(bytes, _mm256_broadcastsi128_si256(_mm_setr_epi8(8, -128, 9, -128, 10, -128, 11, -128, 12,
                                                                              -128, 13, -128, 14, -128, 15, -128)));
}

struct Q4_KDot {
  // sums[c] = sum over the super-block of sc[s] * m[s] * level * a (8 int32 lanes) for one weight row;
  // multipliers[c]: activation c's sub-block multipliers (sub_block_multipliers).
  template <int C>
  static void row_sums(const BlockQ4_K& block, __m256i scales_mins, const ActQ8_K* const (&a)[C],
                       const __m256i (&multipliers)[C], __m256i (&sums)[C]) {
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    const __m256i scales = widen_scales(scales_mins);
    __m256i scaled[C];  // sc * m: at most 63 * 16
    for (int c = 0; c < C; ++c) {
      sums[c] = _mm256_setzero_si256();
      scaled[c] = _mm256_mullo_epi16(scales, multipliers[c]);
    }
    for (int j = 0; j < 4; ++j) {
      __m256i packed = load32(block.qs + 32 * j);
      __m256i low = _mm256_and_si256(packed, low_mask);
      __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
      for (int c = 0; c < C; ++c) {
        __m256i scale_low = broadcast_lane(scaled[c], 2 * j), scale_high = broadcast_lane(scaled[c], 2 * j + 1);
        __m256i p_low = _mm256_maddubs_epi16(low, load32(a[c]->qs + 64 * j));
        __m256i p_high = _mm256_maddubs_epi16(high, load32(a[c]->qs + 64 * j + 32));
        sums[c] = _mm256_add_epi32(sums[c], _mm256_add_epi32(_mm256_madd_epi16(p_low, scale_low),
                                                             _mm256_madd_epi16(p_high, scale_high)));
        // An empty asm that claims to change sums[c]: it keeps GCC from deferring the adds of all
        // sub-blocks (and all four rows) to the end, which holds every madd result live and spills
        // them to the stack (measured: run<4, 1> shrinks from ~400 to ~210 instructions, +5% in L2).
        __asm__("" : "+x"(sums[c]));
      }
    }
  }

  // Lanes [d0 d1 d2 d3 d0 d1 d2 d3] and [dmin0 dmin1 dmin2 dmin3 0 0 0 0] of block b in rows 0..3:
  // d and dmin are adjacent, so one 32-bit load per row and one conversion serve both.
  static void four_row_factors(const uint8_t* w, size_t w_stride, int64_t b, __m256* d, __m256* dmin) {
    auto pair = [&](int r) {
      uint32_t bits;
      std::memcpy(&bits, &reinterpret_cast<const BlockQ4_K*>(w + r * w_stride)[b].d, sizeof(bits));
      return static_cast<int>(bits);
    };
    __m256 halves = _mm256_cvtph_ps(_mm_setr_epi32(pair(0), pair(1), pair(2), pair(3)));
    *d = _mm256_permutevar8x32_ps(halves, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    *dmin = _mm256_and_ps(_mm256_permutevar8x32_ps(halves, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7)),
                          _mm256_castsi256_ps(_mm256_setr_epi32(-1, -1, -1, -1, 0, 0, 0, 0)));
  }

  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    static_assert(R == 1 || R == 4, "tiles of 1 or 4 weight rows");
    __m256 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / kBlockK; ++b) {
      const ActQ8_K* a[C];
      __m256i a_sums[C];  // the activation's 8 sums of 32 values, in both halves
      __m256i multipliers[C];
      for (int c = 0; c < C; ++c) {
        a[c] = reinterpret_cast<const ActQ8_K*>(act + c * act_stride) + b;
        a_sums[c] = _mm256_broadcastsi128_si256(sub_block_sums(*a[c]));
        multipliers[c] = sub_block_multipliers(*a[c]);
      }
      if constexpr (R == 4) {
        // Four rows' sums packed into one vector (block32_dot_avx2.h), the mins of rows 0..3 into
        // lanes 0..3 of another: per activation row one conversion and FMA for each.
        __m256i sums[4][C], mins[2][C];
        __m256i row_mins[4];
        for (int r = 0; r < 4; ++r) {
          prefetch_ahead<sizeof(BlockQ4_K)>(w + r * w_stride, b);
          const BlockQ4_K& block = reinterpret_cast<const BlockQ4_K*>(w + r * w_stride)[b];
          __m256i scales_mins = decode_scales_mins(block.scales);
          row_mins[r] = widen_mins(scales_mins);
          row_sums<C>(block, scales_mins, a, multipliers, sums[r]);
        }
        // [mins of row 0 | row 1] and [row 2 | row 3] against the activation sums: 4 int32 per row.
        __m256i mins01 = _mm256_blend_epi32(row_mins[0], row_mins[1], 0xF0);
        __m256i mins23 = _mm256_blend_epi32(row_mins[2], row_mins[3], 0xF0);
        for (int c = 0; c < C; ++c) {  // mn * m: at most 63 * 16
          mins[0][c] = _mm256_madd_epi16(_mm256_mullo_epi16(mins01, multipliers[c]), a_sums[c]);
          mins[1][c] = _mm256_madd_epi16(_mm256_mullo_epi16(mins23, multipliers[c]), a_sums[c]);
        }
        __m256 d, dmin;
        four_row_factors(w, w_stride, b, &d, &dmin);
        for (int c = 0; c < C; ++c) {
          __m256 a_scale = _mm256_set1_ps(a[c]->d);
          __m256i scaled = pack_four_rows(sums[0][c], sums[1][c], sums[2][c], sums[3][c]);
          // Halves [r0 r0 r2 r2 | r1 r1 r3 r3] summed in pairs, then rows 0..3 moved to lanes 0..3.
          __m256i min_pairs = _mm256_hadd_epi32(mins[0][c], mins[1][c]);
          __m256i min_rows = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(min_pairs, min_pairs),
                                                         _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0));
          acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, a_scale), _mm256_cvtepi32_ps(scaled), acc[c]);
          acc[c] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, a_scale), _mm256_cvtepi32_ps(min_rows), acc[c]);
        }
      } else {
        prefetch_ahead<sizeof(BlockQ4_K)>(w, b);
        const BlockQ4_K& block = reinterpret_cast<const BlockQ4_K*>(w)[b];
        __m256i scales_mins = decode_scales_mins(block.scales);
        __m128i mins = _mm256_castsi256_si128(widen_mins(scales_mins));
        __m256i sums[C];
        row_sums<C>(block, scales_mins, a, multipliers, sums);
        float d = _cvtsh_ss(block.d), dmin = _cvtsh_ss(block.dmin);
        for (int c = 0; c < C; ++c) {
          __m128i scaled_mins = _mm_mullo_epi16(mins, _mm256_castsi256_si128(multipliers[c]));
          __m128i row_mins = _mm_madd_epi16(scaled_mins, _mm256_castsi256_si128(a_sums[c]));
          __m256 offsets = _mm256_cvtepi32_ps(_mm256_zextsi128_si256(row_mins));
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
    sub_block_scales_offsets_k(block.scales, _cvtsh_ss(block.d), _cvtsh_ss(block.dmin), scales, offsets);
  }
};

}  // namespace

void pack_vnni_q4_k(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel) {
  pack_panel<Q4_KPanel, kVnniPanelRows, true>(w, w_stride, rows, k, panel);
}

void add_q4_k(IsaKernels& table) {
  set_type_kernels<Q4_KDot, Q4_KPanel>(table.q4_k, dequantize_q4_k);
}

}  // namespace qvl::avx2
