// Q5_K: as Q4_K with 5-bit levels (q in [0, 31]); bit s of qh[l] is bit 4 of level l of sub-block s.
// Scalar reference: dequantize, quantize (least-squares scale and min search) and the integer dot product.
#include "kernels/strict_fp.h"

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/k_quant_fit.h"
#include "kernels/kernel_table.h"
#include "kernels/tile_loop.h"

namespace qvl::scalar {
namespace {

constexpr int kSubBlocks = 8;
constexpr int kSubBlock = 32;

inline int level5(const BlockQ5_K& block, int s, int l) {
  int low = (block.qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F;
  return low | (((block.qh[l] >> s) & 1) << 4);
}

void dequantize_q5_k(const uint8_t* src, float* dst, int64_t k) {
  const auto* blocks = reinterpret_cast<const BlockQ5_K*>(src);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const BlockQ5_K& block = blocks[b];
    float d = half_to_float(block.d), dmin = half_to_float(block.dmin);
    for (int s = 0; s < kSubBlocks; ++s) {
      uint8_t sc, mn;
      unpack_scale_min_k(block.scales, s, &sc, &mn);
      float scale = d * sc, min = dmin * mn;
      float* out = dst + b * kBlockK + s * kSubBlock;
      for (int l = 0; l < kSubBlock; ++l) out[l] = scale * static_cast<float>(level5(block, s, l)) - min;
    }
  }
}

void quantize_q5_k(const float* src, uint8_t* dst, int64_t k) {
  auto* blocks = reinterpret_cast<BlockQ5_K*>(dst);
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    const float* x = src + b * kBlockK;
    BlockQ5_K& block = blocks[b];
    const SuperBlockScales fitted = fit_super_block_scales(x, 31, block.scales);
    block.d = fitted.d;
    block.dmin = fitted.dmin;
    const uint8_t* sc = fitted.scale;
    const uint8_t* mn = fitted.min;
    float d = half_to_float(block.d), dmin = half_to_float(block.dmin);
    std::memset(block.qs, 0, sizeof(block.qs));
    std::memset(block.qh, 0, sizeof(block.qh));
    for (int s = 0; s < kSubBlocks; ++s) {
      float scale = d * sc[s], min = dmin * mn[s];
      for (int l = 0; l < kSubBlock; ++l) {
        int q = nearest_level(x[s * kSubBlock + l], scale, min, 31);
        block.qs[32 * (s / 2) + l] |= static_cast<uint8_t>((q & 0x0F) << (4 * (s % 2)));
        block.qh[l] |= static_cast<uint8_t>((q >> 4) << s);
      }
    }
  }
}

float dot_q5_k(int64_t k, const uint8_t* w_row, const uint8_t* act_row) {
  const auto* w = reinterpret_cast<const BlockQ5_K*>(w_row);
  const auto* a = reinterpret_cast<const ActQ8_K*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kBlockK; ++b) {
    int32_t scaled = 0, offsets = 0;
    for (int s = 0; s < kSubBlocks; ++s) {
      uint8_t sc, mn;
      unpack_scale_min_k(w[b].scales, s, &sc, &mn);
      int32_t sumi = 0;
      for (int l = 0; l < kSubBlock; ++l) sumi += level5(w[b], s, l) * a[b].qs[s * kSubBlock + l];
      scaled += sc * sumi;
      offsets += mn * (a[b].bsums[2 * s] + a[b].bsums[2 * s + 1]);
    }
    sum += a[b].d * (half_to_float(w[b].d) * static_cast<float>(scaled) -
                     half_to_float(w[b].dmin) * static_cast<float>(offsets));
  }
  return sum;
}

}  // namespace

void add_q5_k(IsaKernels& table) {
  table.q5_k = {dequantize_q5_k, quantize_q5_k, ActFormat::Q8_K, dot_tile_by_rows<dot_q5_k>};
}

}  // namespace qvl::scalar
