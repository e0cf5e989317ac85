// Q8_0 on AVX-512: the decode (row-dot) kernel, against ActQ8_32 activation blocks; the shared
// machinery (row streams, tiles, the bias taken out through the accumulator's start value, the
// four-row reduction) is in block32_dot_avx512.h.
//
// Four consecutive blocks of a row (136 bytes) go into two 512-bit vectors, one block per 128-bit
// lane: `low` holds values 0..15 of each block, `high` values 16..31. Each is one word permute of two
// 64-byte loads (the second pair loaded 8 bytes further on, so that no load reaches past the group).
// VNNI dpbusd wants one unsigned operand: the signed levels are flipped to unsigned (xor 0x80 =
// level + 128), a bias of 128 the header takes out.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include "kernels/block32_dot_avx512.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"

namespace qvl::avx512 {
namespace {

using block32::kQuadRows;
using block32::QuadGroup;

constexpr int kBlockWords = sizeof(BlockQ8_0) / 2;  // 17: the scale, then 16 words of levels
constexpr int kHighShiftBytes = 8;                  // the second pair of loads: bytes 8..135 of the group

// Word w of `low` (block w / 8, level words w % 8) from words 0..63 of the group.
__m512i low_word_index() {
  alignas(64) int16_t index[32];
  for (int w = 0; w < 32; ++w) index[w] = static_cast<int16_t>(kBlockWords * (w / 8) + 1 + w % 8);
  return _mm512_load_si512(index);
}

// Word w of `high` (block w / 8, level words 8 + w % 8) from words 4..67 of the group.
__m512i high_word_index() {
  alignas(64) int16_t index[32];
  for (int w = 0; w < 32; ++w) {
    index[w] = static_cast<int16_t>(kBlockWords * (w / 8) + 9 + w % 8 - kHighShiftBytes / 2);
  }
  return _mm512_load_si512(index);
}

// Word 4j + r (j < 4 blocks, every r) = the scale of block j, from words 0..63 of a row's group; a
// blend per row r then keeps lanes 4j + r of row r.
__m512i scale_word_index() {
  alignas(64) int16_t index[32] = {};
  for (int w = 0; w < 16; ++w) index[w] = static_cast<int16_t>(kBlockWords * (w / 4));
  return _mm512_load_si512(index);
}
constexpr __mmask32 kRowLanes = 0x1111;  // lanes 4j of row 0; shifted left by r for row r

struct Q8_0Levels {
  using Block = BlockQ8_0;
  static constexpr int kLevelBias = 128;  // the sign flip below
  // 0, 64 and 128 bytes into the 136-byte group, so successive groups' prefetches are never more than
  // a line apart and every line of the row is touched.
  static constexpr size_t kPrefetchOffsets[] = {0, 64, 128};

  struct Indices {
    __m512i low, high, scale;
  };
  static Indices indices() { return {low_word_index(), high_word_index(), scale_word_index()}; }

  static inline QuadGroup load_quad(const uint8_t* const (&group)[kQuadRows], const Indices& index) {
    const __m512i sign_flip = _mm512_set1_epi8(static_cast<char>(0x80));
    QuadGroup w;
    __m512i scales = _mm512_setzero_si512();
    for (int r = 0; r < kQuadRows; ++r) {
      __m512i head = _mm512_loadu_si512(group[r]), next = _mm512_loadu_si512(group[r] + 64);
      __m512i shifted_head = _mm512_loadu_si512(group[r] + kHighShiftBytes);
      __m512i shifted_next = _mm512_loadu_si512(group[r] + kHighShiftBytes + 64);
      w.low[r] = _mm512_xor_si512(_mm512_permutex2var_epi16(head, index.low, next), sign_flip);
      w.high[r] = _mm512_xor_si512(_mm512_permutex2var_epi16(shifted_head, index.high, shifted_next), sign_flip);
      scales = _mm512_mask_blend_epi16(kRowLanes << r, scales, _mm512_permutex2var_epi16(head, index.scale, next));
    }
    w.scale = _mm512_cvtph_ps(_mm512_castsi512_si256(scales));
    return w;
  }
};

}  // namespace

void add_q8_0(IsaKernels& table) { table.q8_0.dot_tile = block32::dot_tile<Q8_0Levels>; }

}  // namespace qvl::avx512
