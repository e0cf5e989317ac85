"""The Exact path's float GEMM (n >= 16 activation rows) on shapes that reach every tail of its tiles.

Same bound as tests/test_kernels.py: |out - ref| <= EXACT_RELATIVE * (|x| @ |W|.T), ref in float64.
The shapes aim at the AVX-512 tiling (32-row panels, a 16-row panel for a short remainder, 12
activation rows per tile, 96 per pass, 16 x 16 transposes when packing) and the AVX2 one (16 x 6):
- 404 rows on 2 threads: 64-row chunks and a last chunk of 20 rows (a 32-row panel, 4 rows masked);
- 300 rows on 2 threads: 48-row chunks (a 32-row and a 16-row panel) and a last chunk of 12;
- k = 300 and 44: a k-slice of 256 then 44 (two transposed blocks of 16 and 12 values packed one by
  one); k = 15: no whole block of 16;
- n = 101: a second pass of activation rows (96 + 5), and partial tiles of 12 and of 6.
"""
from __future__ import annotations

import numpy as np
import pytest
from qvl_local import ops

EXACT_RELATIVE = 1e-5


@pytest.mark.parametrize(
    ("ggml_type", "rows", "k", "n", "n_threads"),
    [
        ("F32", 404, 300, 101, 2),
        ("F16", 404, 300, 101, 2),
        ("BF16", 300, 44, 35, 2),
        ("F32", 20, 44, 16, 1),
        ("F16", 17, 15, 17, 1),
        ("Q8_0", 300, 288, 35, 2),
    ],
)
def test_exact_gemm_tails_match_float64(isa: str, ggml_type: str, rows: int, k: int, n: int, n_threads: int) -> None:
    rng = np.random.default_rng(rows * 1000 + k + n)
    w = ops.quantize((0.1 * rng.standard_normal((rows, k))).astype(np.float32), ggml_type)
    x = rng.standard_normal((n, k)).astype(np.float32)
    w64, x64 = ops.dequantize(w).astype(np.float64), x.astype(np.float64)
    reference, scale = x64 @ w64.T, np.abs(x64) @ np.abs(w64).T
    out = ops.matmul(w, x, precision="exact", n_threads=n_threads)
    assert out.shape == (n, rows) and out.dtype == np.float32
    assert np.all(np.abs(out - reference) <= EXACT_RELATIVE * scale)
