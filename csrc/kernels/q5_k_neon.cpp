// Q5_K on NEON: the Fast dot product against ActQ8_K and the matrix-matrix panels, both from
// k_quant_neon.h (each weight row's super-block decoded once into 16 vectors of 5-bit levels in value order,
// then dotted with every activation row of the tile).
#include "kernels/strict_fp.h"

#include "kernels/blocks.h"
#include "kernels/k_quant_neon.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_neon.h"

namespace qvl::neon {

void add_q5_k(IsaKernels& table) {
  table.q5_k.dot_tile = dot_tile_tiled<KQuantDot<BlockQ5_K, true>>;
  table.q5_k.gemm_tile = gemm_tile<KQuantPanel<BlockQ5_K, true>>;
  table.q5_k.gemm_act_format = ActFormat::Q8_K_AS_32;
}

}  // namespace qvl::neon
