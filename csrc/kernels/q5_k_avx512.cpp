// Q5_K on AVX-512: the decode kernel of k_quant_nibbles_avx512.h over Q5_K's levels, the nibbles of qs
// with a fifth bit from qh (bit s of qh[l]: sub-block s, value l). qh is loaded once per row's
// super-block, broadcast to both 256-bit halves and the upper half shifted right by 2, so that bit s of
// each byte is the fifth bit of sub-block s in the lower half (the first 32 values of a level vector)
// and of sub-block s + 2 in the upper half: one shift and a mask move it to bit 4 of the levels.
// Levels 0..31: vpdpbusd's sums reach 4 * 31 * 127 = 15748, still exact as int16.
// Measured out of cache (32768x4096, Zen 5 VM): 48 GB/s on 2 threads, 29-30 on one, where the AVX2
// kernel read 29-33 and 16; in L2 on one thread (1024x1536) 26 us against 55-60.
#include <immintrin.h>

#include "kernels/blocks.h"
#include "kernels/k_quant_dot_avx512.h"
#include "kernels/k_quant_nibbles_avx512.h"
#include "kernels/kernel_table.h"

namespace qvl::avx512 {
namespace {

// Bit `bit` (0..7) of every byte moved to bit 4, masked: 16-bit shifts of at most 4 keep it in its byte.
template <int bit>
inline __m512i fifth_bit(__m512i qh) {
  __m512i at_4;
  if constexpr (bit < 4) {
    at_4 = _mm512_slli_epi16(qh, 4 - bit);
  } else if constexpr (bit == 4) {
    at_4 = qh;
  } else {
    at_4 = _mm512_srli_epi16(qh, bit - 4);
  }
  return _mm512_and_si512(at_4, _mm512_set1_epi8(0x10));
}

struct Q5_KLevels {
  using Block = BlockQ5_K;
  struct RowBits {
    __m512i qh;  // see the file comment
  };
  static RowBits row_bits(const Block& block) {
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.qh)));
    return {_mm512_mask_srli_epi16(qh, 0xFFFF0000u, qh, 2)};
  }
  static void levels(const Block& block, const RowBits& bits, int h, __m512i& low, __m512i& high) {
    const __m512i low_mask = _mm512_set1_epi8(0x0F);
    const __m512i packed = _mm512_loadu_si512(block.qs + 64 * h);
    const __m512i low_fifth = h == 0 ? fifth_bit<0>(bits.qh) : fifth_bit<4>(bits.qh);
    const __m512i high_fifth = h == 0 ? fifth_bit<1>(bits.qh) : fifth_bit<5>(bits.qh);
    // (x & 0x0F) | (fifth & 0xF0)
    low = _mm512_ternarylogic_epi32(packed, low_fifth, low_mask, 0xE4);
    high = _mm512_ternarylogic_epi32(_mm512_srli_epi16(packed, 4), high_fifth, low_mask, 0xE4);
  }
};

}  // namespace

void add_q5_k(IsaKernels& table) { table.q5_k.dot_tile = k_quant::dot_tile<k_quant_nibbles::Policy<Q5_KLevels>>; }

}  // namespace qvl::avx512
