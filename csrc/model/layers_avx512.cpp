// AVX-512 twins of layers_avx2.cpp's activation functions: the same steps and constants on 16 lanes,
// so each value comes out as on the AVX2 path. SiLU runs over every MLP value of a prompt (512 x 8960
// per layer for Qwen2-VL-2B), QuickGELU over every ViT MLP value.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "model/avx512_math.h"

namespace qvl::avx512 {
namespace {

// x * sigmoid(k * x) = x / (1 + e^(-k x)).
inline __m512 x_sigmoid_ps(__m512 x, float k) {
  __m512 e = exp_ps(_mm512_mul_ps(x, _mm512_set1_ps(-k)));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

}  // namespace

void silu_mul_in_place(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 g = x_sigmoid_ps(_mm512_loadu_ps(gate + i), 1.0f);
    _mm512_storeu_ps(gate + i, _mm512_mul_ps(g, _mm512_loadu_ps(up + i)));
  }
  if (i < n) {  // the tail in masked lanes: the same arithmetic as the full vectors
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 g = x_sigmoid_ps(_mm512_maskz_loadu_ps(tail, gate + i), 1.0f);
    _mm512_mask_storeu_ps(gate + i, tail, _mm512_mul_ps(g, _mm512_maskz_loadu_ps(tail, up + i)));
  }
}

void quick_gelu_in_place(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, x_sigmoid_ps(_mm512_loadu_ps(x + i), 1.702f));
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, tail, x_sigmoid_ps(_mm512_maskz_loadu_ps(tail, x + i), 1.702f));
  }
}

}  // namespace qvl::avx512
