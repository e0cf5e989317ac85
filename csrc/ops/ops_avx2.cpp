// The op table's AVX2 + FMA entries: the ISA-neutral ops (ops_simd.h) on 8-lane vectors.
#include "kernels/strict_fp.h"

#include "simd/vec_avx2.h"

#include "ops/ops_simd.h"

namespace qvl::avx2 {

void add_ops(IsaOps& table) {
  // Causal: 24 query lanes (3 vectors), 4 keys per scoring step (12 accumulators + 3 queries + 1 key =
  // 16 registers), 8 value dimensions per step. Vision: 4 rows x 3 vectors, no prefetching.
  simd::set_ops<Vec, simd::CausalGroup<Vec, 3, 4, 8>, simd::VisionAttention<Vec, 4, 3, false>>(table);
}

}  // namespace qvl::avx2
