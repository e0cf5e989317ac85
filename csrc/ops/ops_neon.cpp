// The op table's NEON entries: the ISA-neutral ops (ops_simd.h) on 4-lane vectors.
#include "kernels/strict_fp.h"

#include "simd/vec_neon.h"

#include "ops/ops_simd.h"

namespace qvl::neon {

void add_ops(IsaOps& table) {
  // Causal: 24 query lanes (6 vectors), 4 keys or value dimensions per step (24 accumulators + 6
  // queries + 1 key <= 32 registers). Vision: 4 rows x 6 vectors, no prefetching.
  simd::set_ops<Vec, simd::CausalGroup<Vec, 6, 4, 4>, simd::VisionAttention<Vec, 4, 6, false>>(table);
}

}  // namespace qvl::neon
