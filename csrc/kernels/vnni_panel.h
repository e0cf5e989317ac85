// The weight panels of the AVX-512 VNNI matrix-matrix path (gemm_avx512.cpp): the AVX2 panels of
// panel_avx2.h at 16 rows, so that one 512-bit vector holds 4 consecutive levels of each of 16 rows,
// with every level unsigned (signed types are stored + 128 with the shift in the offset): vpdpbusd
// multiplies unsigned weight bytes by signed activation bytes and adds the 4 products of each row
// straight into its int32 lane. Per block of B values: B / 4 groups of 64 level bytes, then the 16
// rows' float scales and their 16 offsets (x = scale * level + offset).
//
// The packers are the AVX2 files' (each type's decoder lives there); the GEMM itself is type-agnostic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kernel_table.h"

namespace qvl {

constexpr int kVnniPanelRows = 16;

template <int B>
constexpr size_t vnni_panel_block_bytes() {
  return kVnniPanelRows * B + 2 * kVnniPanelRows * sizeof(float);
}

// Packs `rows` (<= 16) weight rows, w_stride bytes apart and k values long, into one panel.
using VnniPackFn = void (*)(const uint8_t* w, size_t w_stride, int rows, int64_t k, uint8_t* panel);

// The calling thread's panel memory, reused across calls.
inline uint8_t* vnni_panel_buffer(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

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
