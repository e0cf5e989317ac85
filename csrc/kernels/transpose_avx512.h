// A 16 x 16 transpose of 32-bit elements in AVX-512 registers, for the panel packers (float_avx512.cpp,
// float_int16_avx512.cpp). Include only from *_avx512.cpp.
#pragma once
#include <immintrin.h>

namespace qvl::avx512 {

// v[r] lane c becomes v[c] lane r. Each round interleaves rows j and j + 8 (lanes 0..7 of both into
// row 2j, lanes 8..15 into row 2j + 1): with the element's address written as its 4 row bits then its
// 4 lane bits, that rotates the address left by one bit, so four rounds swap the row and lane bits.
inline void transpose_16x16(__m512 (&v)[16]) {
  const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
#pragma GCC unroll 4
  for (int round = 0; round < 4; ++round) {
    __m512 next[16];
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      next[2 * j] = _mm512_permutex2var_ps(v[j], low, v[j + 8]);
      next[2 * j + 1] = _mm512_permutex2var_ps(v[j], high, v[j + 8]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) v[r] = next[r];
  }
}

}  // namespace qvl::avx512
