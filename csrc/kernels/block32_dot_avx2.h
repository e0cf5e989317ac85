// The row-dot kernel (decode and small n) for the 32-value types x = d * level, with d an fp16 at the
// start of each block (Q8_0, Q4_0): include only from *_avx2.cpp.
//
// Per block and activation row, a tile of 4 weight rows yields 4 vectors of int32 partial sums; two
// rounds of hadd pack them into one vector (rows 0..3 in each 128-bit half), so the float work (one
// conversion, one FMA against the 4 rows' scales) is done once per block instead of once per row.
#pragma once
#include "kernels/avx2_common.h"
#include "kernels/blocks.h"

namespace qvl::avx2 {

// Lanes 0..3 = the fp16 field `Field` of block b in rows 0..3 (as float), repeated in lanes 4..7.
template <typename Block, uint16_t Block::*Field>
inline __m256 four_row_halves(const uint8_t* w, size_t w_stride, int64_t b) {
  auto bits = [&](int r) { return static_cast<int16_t>(reinterpret_cast<const Block*>(w + r * w_stride)[b].*Field); };
  __m128 four = _mm_cvtph_ps(_mm_setr_epi16(bits(0), bits(1), bits(2), bits(3), 0, 0, 0, 0));
  return _mm256_set_m128(four, four);
}

// Rows 0..3's 8-lane int32 sums reduced to one vector: lanes r and r + 4 hold halves of row r's total.
inline __m256i pack_four_rows(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
}

// out[c * out_stride + r] = lanes r + r + 4 of acc[c] (the layout pack_four_rows leaves).
template <int C>
inline void store_four_row_sums(const __m256 (&acc)[C], float* out, size_t out_stride) {
  alignas(32) float lanes[C][8];
  for (int c = 0; c < C; ++c) _mm256_store_ps(lanes[c], acc[c]);
  for (int c = 0; c < C; ++c) {
    for (int r = 0; r < 4; ++r) out[c * out_stride + r] = lanes[c][r] + lanes[c][r + 4];
  }
}

// Levels provides: using Block; Prepared prepare(a_levels) (per activation block, shared by the rows);
// Weight load(block) (the row's levels, decoded once for all activation rows);
// __m256i products(weight, a_levels, prepared): 8 int32 partial sums of level * activation; and
// __m256i four_row_sums(weights[4], a_levels, prepared): rows 0..3's sums in pack_four_rows' layout.
template <typename Levels>
struct Block32Dot {
  using Block = typename Levels::Block;

  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    static_assert(R == 1 || R == 4, "tiles of 1 or 4 weight rows");
    __m256 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / kBlock32; ++b) {
      for (int r = 0; r < R; ++r) prefetch_ahead<sizeof(Block)>(w + r * w_stride, b);
      __m256i a_levels[C];
      typename Levels::Prepared prepared[C];
      float a_scale[C];
      for (int c = 0; c < C; ++c) {
        const ActQ8_32& a = reinterpret_cast<const ActQ8_32*>(act + c * act_stride)[b];
        a_levels[c] = load32(a.qs);
        prepared[c] = Levels::prepare(a_levels[c]);
        a_scale[c] = a.d;
      }
      typename Levels::Weight weights[R];
      for (int r = 0; r < R; ++r) weights[r] = Levels::load(reinterpret_cast<const Block*>(w + r * w_stride)[b]);
      if constexpr (R == 4) {
        __m256 scales = four_row_halves<Block, &Block::d>(w, w_stride, b);
        for (int c = 0; c < C; ++c) {
          __m256i packed = Levels::four_row_sums(weights, a_levels[c], prepared[c]);
          acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(scales, _mm256_set1_ps(a_scale[c])), _mm256_cvtepi32_ps(packed),
                                   acc[c]);
        }
      } else {
        float scale = _cvtsh_ss(reinterpret_cast<const Block*>(w)[b].d);
        for (int c = 0; c < C; ++c) {
          __m256i p = Levels::products(weights[0], a_levels[c], prepared[c]);
          acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(scale * a_scale[c]), _mm256_cvtepi32_ps(p), acc[c]);
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

// Levels for Block32Dot of a type with signed levels: |w| times the activation with w's sign moved onto
// it (maddubs needs one operand unsigned). Decoder provides using Block and
// static __m256i levels(const Block&): the block's 32 signed levels.
template <typename Decoder>
struct SignedLevels {
  using Block = typename Decoder::Block;
  struct Weight {
    __m256i levels, magnitude;
  };
  using Prepared = int;  // nothing to prepare per activation block
  static Prepared prepare(__m256i) { return 0; }
  static Weight load(const Block& block) {
    __m256i levels = Decoder::levels(block);
    return {levels, _mm256_sign_epi8(levels, levels)};
  }
  static __m256i products(const Weight& w, __m256i a_levels, Prepared) {
    return dot_u8_s8(w.magnitude, _mm256_sign_epi8(a_levels, w.levels));
  }
  static __m256i four_row_sums(const Weight (&w)[4], __m256i a_levels, Prepared prepared) {
    return pack_four_rows(products(w[0], a_levels, prepared), products(w[1], a_levels, prepared),
                          products(w[2], a_levels, prepared), products(w[3], a_levels, prepared));
  }
};

// The row-dot kernel of the types x = d * level + m (Q4_1, Q5_1): the unsigned levels go straight into
// maddubs; m meets the activation block's sum. Decoder provides using Block (with fp16 d and m) and
// static __m256i levels(const Block&): the block's 32 unsigned levels.
template <typename Decoder>
struct MinBlockDot {
  using Block = typename Decoder::Block;

  template <int R, int C>
  static void run(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* act, size_t act_stride, float* out,
                  size_t out_stride) {
    __m256 acc[R][C] = {};
    float offsets[R][C] = {};
    for (int64_t b = 0; b < k / kBlock32; ++b) {
      for (int r = 0; r < R; ++r) prefetch_ahead<sizeof(Block)>(w + r * w_stride, b);
      __m256i a_levels[C];
      float a_scale[C], a_sum[C];
      for (int c = 0; c < C; ++c) {
        const ActQ8_32& a = reinterpret_cast<const ActQ8_32*>(act + c * act_stride)[b];
        a_levels[c] = load32(a.qs);
        a_scale[c] = a.d;
        a_sum[c] = a.sum;
      }
      for (int r = 0; r < R; ++r) {
        const Block& block = reinterpret_cast<const Block*>(w + r * w_stride)[b];
        __m256i levels = Decoder::levels(block);
        float scale = _cvtsh_ss(block.d), min = _cvtsh_ss(block.m);
        for (int c = 0; c < C; ++c) {
          __m256i sums = dot_u8_s8(levels, a_levels[c]);
          acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(scale * a_scale[c]), _mm256_cvtepi32_ps(sums), acc[r][c]);
          offsets[r][c] += min * a_sum[c];
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) out[c * out_stride + r] = horizontal_sum(acc[r][c]) + offsets[r][c];
    }
  }
};

}  // namespace qvl::avx2
