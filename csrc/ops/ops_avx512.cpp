// The op table's AVX-512 entries: the ISA-neutral ops (ops_simd.h) on 16-lane vectors; the integer vision
// attention tiles, which only this ISA has, are vision_attention_int8_avx512.cpp (Int8) and
// vision_attention_int16_avx512.cpp (Fast), sharing integer_attention_avx512.h.
#include "kernels/strict_fp.h"

#include "simd/vec_avx512.h"

#include "ops/ops_simd.h"

namespace qvl::avx512 {

void add_ops(IsaOps& table) {
  // Causal: 48 query lanes (3 vectors), 8 keys or value dimensions per step (24 accumulators + 3
  // queries + 1 key <= 32 registers). Vision: 8 rows x 3 vectors, prefetching the next blocks.
  simd::set_ops<Vec, simd::CausalGroup<Vec, 3, 8, 8>, simd::VisionAttention<Vec, 8, 3, true>>(table);
}

}  // namespace qvl::avx512
