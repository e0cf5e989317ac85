// Q4_0 on AVX-512: the decode (row-dot) kernel, against ActQ8_32 activation blocks; the shared
// machinery (row streams, tiles, the bias taken out through the accumulator's start value, the
// four-row reduction) is in block32_dot_avx512.h.
//
// Four consecutive blocks of a row go into one 512-bit vector, one block per 128-bit lane: a 64-byte
// and an 8-byte load take the 72 bytes, and one word permute drops the four fp16 scales, leaving the
// 64 bytes of nibbles. The nibbles are split once (one shift, two ands for 128 values) into unsigned
// levels 0..15 for VNNI dpbusd; their zero point of 8 is the bias the header takes out.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include "kernels/block32_dot_avx512.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"

namespace qvl::avx512 {
namespace {

using block32::kQuadRows;
using block32::QuadGroup;

constexpr int kBlockWords = sizeof(BlockQ4_0) / 2;  // 9: the scale, then 8 words of nibbles

// Word w of the group's nibbles (block w / 8, word w % 8 of its 16 bytes) from the 36 words loaded:
// 0..31 from the 64-byte load, 32..35 from the 8-byte one.
__m512i nibble_word_index() {
  alignas(64) int16_t index[32];
  for (int w = 0; w < 32; ++w) index[w] = static_cast<int16_t>(kBlockWords * (w / 8) + 1 + w % 8);
  return _mm512_load_si512(index);
}

// Word 4j + r (j < 4 blocks) = the scale of block j of row r, for the rows of the first table (even
// r) and of the second (odd r); a blend then takes rows 2, 3 from another pair of rows.
__m512i scale_word_index() {
  alignas(64) int16_t index[32] = {};
  for (int w = 0; w < 16; ++w) index[w] = static_cast<int16_t>(kBlockWords * (w / 4) + (w % 2 == 1 ? 32 : 0));
  return _mm512_load_si512(index);
}
constexpr __mmask32 kRows23 = 0xCCCC;

struct Q4_0Levels {
  using Block = BlockQ4_0;
  static constexpr int kLevelBias = 8;  // the zero point: levels 0..15 are already unsigned
  // Both ends of the 72-byte group: a 72-byte step can skip a line in between.
  static constexpr size_t kPrefetchOffsets[] = {0, block32::kGroupBlocks * sizeof(BlockQ4_0) - 1};

  struct Indices {
    __m512i nibble, scale;
  };
  static Indices indices() { return {nibble_word_index(), scale_word_index()}; }

  static inline QuadGroup load_quad(const uint8_t* const (&group)[kQuadRows], const Indices& index) {
    const __m512i low_mask = _mm512_set1_epi8(0x0F);
    QuadGroup w;
    __m512i head[kQuadRows];
    for (int r = 0; r < kQuadRows; ++r) {
      head[r] = _mm512_loadu_si512(group[r]);
      __m512i tail = _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(group[r] + 64)));
      __m512i nibbles = _mm512_permutex2var_epi16(head[r], index.nibble, tail);
      w.low[r] = _mm512_and_si512(nibbles, low_mask);
      w.high[r] = _mm512_and_si512(_mm512_srli_epi16(nibbles, 4), low_mask);
    }
    __m512i scales01 = _mm512_permutex2var_epi16(head[0], index.scale, head[1]);
    __m512i scales23 = _mm512_permutex2var_epi16(head[2], index.scale, head[3]);
    w.scale = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_mask_blend_epi16(kRows23, scales01, scales23)));
    return w;
  }
};

}  // namespace

void add_q4_0(IsaKernels& table) { table.q4_0.dot_tile = block32::dot_tile<Q4_0Levels>; }

}  // namespace qvl::avx512
