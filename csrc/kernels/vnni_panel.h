// The weight panels of the AVX-512 VNNI matrix-matrix path (gemm_avx512.cpp): the AVX2 panels of
// panel_avx2.h at 16 rows, so that one 512-bit vector holds 4 consecutive levels of each of 16 rows,
// with every level unsigned (signed types are stored + 128 with the shift in the offset): vpdpbusd
// multiplies unsigned weight bytes by signed activation bytes and adds the 4 products of each row
// straight into its int32 lane. Per block of B values: B / 4 groups of 64 level bytes, then the 16
// rows' float scales and their 16 offsets (x = scale * level + offset).
//
// The packers are the AVX2 files' (each type's decoder lives there); the GEMM itself is type-agnostic.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/panel_loop.h"

namespace qvl {

constexpr int kVnniPanelRows = 16;

template <int B>
constexpr size_t vnni_panel_block_bytes() {
  return panel_block_bytes_of<B, kVnniPanelRows>();
}

// Packs `rows` (<= 16) weight rows, w_stride bytes apart and k values long, into one panel.
using VnniPackFn = void (*)(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);

// The calling thread's panel memory, reused across calls.
inline uint8_t* vnni_panel_buffer(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

// Packs n_rows weight rows (w_stride bytes apart, k values) into 16-row panels of panel_bytes each, in
// the thread's panel buffer; returns it.
inline uint8_t* pack_vnni_panels(VnniPackFn pack, const uint8_t* w, size_t w_stride, int64_t n_rows, int64_t k,
                                 size_t panel_bytes) {
  const int64_t n_panels = (n_rows + kVnniPanelRows - 1) / kVnniPanelRows;
  uint8_t* panels = vnni_panel_buffer(panel_bytes * static_cast<size_t>(n_panels));
  pack_panels<kVnniPanelRows>(pack, panels, w, w_stride, n_rows, k, panel_bytes);
  return panels;
}

// The AMX Q4_K panel (q4_k_amx.cpp), one per super-block of 16 weight rows: the levels minus 8, signed,
// so that a sub-block's 32-deep product with 8-bit activations stays within int16 (|sum| <= 32 * 8 * 127)
// and the sub-block scales can multiply it as int16 (vpdpwssd); the constant 8 moves into the offset.
// x = d * sc[s] * (level - 8) + offsets[s] with offsets[s] = 8 * d * sc[s] - dmin * mn[s].
struct Q4_KTilePanel {
  int8_t levels[8][kVnniPanelRows * 32];  // per sub-block, TDPBSSD's B layout (4 levels of each row per 64 bytes)
  int32_t scales[8][kVnniPanelRows];      // sc[s] of each row in the low int16 of its lane, 0 above
  float d[kVnniPanelRows];
  float offsets[8][kVnniPanelRows];
};
static_assert(sizeof(Q4_KTilePanel) % 64 == 0, "super-block panels stay 64-byte aligned one after another");

#if defined(QVL_HAVE_AVX2_BUILD)
namespace avx2 {
void pack_vnni_q8_0(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_q4_0(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_q4_1(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_q5_0(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_q5_1(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_q4_k(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_q5_k(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_q6_k(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);  // blocks of 16
// Float weights encoded as Q8_0 blocks on the fly (the Int8 precision).
void pack_vnni_f32(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_f16(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
void pack_vnni_bf16(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);
}  // namespace avx2

// Sets gemm_tile to Gemm<B, packer>::run for every type with a packer (an ISA's panel GEMM); with
// blocks_of_16 false, Q6_K is left as it was.
template <template <int, VnniPackFn> class Gemm>
void set_vnni_gemms(IsaKernels& table, bool blocks_of_16) {
  table.q8_0.gemm_tile = Gemm<32, avx2::pack_vnni_q8_0>::run;
  table.q4_0.gemm_tile = Gemm<32, avx2::pack_vnni_q4_0>::run;
  table.q4_1.gemm_tile = Gemm<32, avx2::pack_vnni_q4_1>::run;
  table.q5_0.gemm_tile = Gemm<32, avx2::pack_vnni_q5_0>::run;
  table.q5_1.gemm_tile = Gemm<32, avx2::pack_vnni_q5_1>::run;
  table.q4_k.gemm_tile = Gemm<32, avx2::pack_vnni_q4_k>::run;
  table.q5_k.gemm_tile = Gemm<32, avx2::pack_vnni_q5_k>::run;
  table.f32.gemm_tile = Gemm<32, avx2::pack_vnni_f32>::run;
  table.f16.gemm_tile = Gemm<32, avx2::pack_vnni_f16>::run;
  table.bf16.gemm_tile = Gemm<32, avx2::pack_vnni_bf16>::run;
  if (blocks_of_16) table.q6_k.gemm_tile = Gemm<16, avx2::pack_vnni_q6_k>::run;
}
#endif

}  // namespace qvl
