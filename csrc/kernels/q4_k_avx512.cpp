// Q4_K on AVX-512: the decode kernel of k_quant_nibbles_avx512.h over Q4_K's levels, the nibbles of qs.
#include <immintrin.h>

#include "kernels/blocks.h"
#include "kernels/k_quant_dot_avx512.h"
#include "kernels/k_quant_nibbles_avx512.h"
#include "kernels/kernel_table.h"

namespace qvl::avx512 {
namespace {

struct Q4_KLevels {
  using Block = BlockQ4_K;
  struct RowBits {};
  static RowBits row_bits(const Block&) { return {}; }
  static void levels(const Block& block, const RowBits&, int h, __m512i& low, __m512i& high) {
    const __m512i low_mask = _mm512_set1_epi8(0x0F);
    const __m512i packed = _mm512_loadu_si512(block.qs + 64 * h);
    low = _mm512_and_si512(packed, low_mask);
    high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_mask);
  }
};

}  // namespace

void add_q4_k(IsaKernels& table) { table.q4_k.dot_tile = k_quant::dot_tile<k_quant_nibbles::Policy<Q4_KLevels>>; }

}  // namespace qvl::avx512
