"""Fast matmuls of float weights (F32 / F16 / BF16) as 16-bit integer blocks, on every ISA this machine runs.

With n >= 16 activation rows and k a multiple of 32, the Fast precision encodes weights and activations
as int16 levels with one scale per 32 values (d = amax / 8191) where the ISA has a 16-bit multiply-add
into int32 (AVX-512 VNNI: the avx512 and amx paths), and in the scalar reference of that kernel; AVX2
and NEON keep float math. Limits, and why:
- ISA vs scalar reference: the same integer block sums and the same float operations in the same
  order (per block fma(sum, d_w * d_x, acc), k-slices of 1024 added in order), so the results are equal.
- Against float64: each value is off by at most half a level step (h = amax of its block / 16382,
  the product x * (8191 / amax) rounded before the rounding to a level adds < 0.1% of a step), so
  |out - ref| <= 1.01 * sum_i (|w_i| hx_i + |x_i| hw_i + hx_i hw_i) plus the float rounding allowance of
  the Exact limit (EXACT_RELATIVE * |x| @ |W|.T).
- Measured on Gaussian data: relative RMS error 1.2e-4 (fp16-rounded activations, llama.cpp's F16 path,
  give 2.1e-4 on the same data); the limit below leaves room.
Shapes: 37 rows (16-row panels and one of 5), 300 rows (a second thread chunk), k = 160 (part of a
k-slice), 288 (a slice and a block), 1280 (five slices); n = 16, 35 (register tiles of 12, 12 and 11),
200 (a second block of activation rows after 192).
"""
from __future__ import annotations

import numpy as np
import pytest
from qvl_local import ops

EXACT_RELATIVE = 1e-5
INT16_ISAS = ("scalar", "avx512", "amx")
INT16_RMS_RELATIVE = 2e-4
FLOAT_TYPES = ("F32", "F16", "BF16")


def case(ggml_type: str, rows: int, k: int, n: int, seed: int) -> tuple[ops.QTensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = ops.quantize((0.1 * rng.standard_normal((rows, k))).astype(np.float32), ggml_type)
    return w, rng.standard_normal((n, k)).astype(np.float32)


def half_steps(values: np.ndarray) -> np.ndarray:
    """Half a level step for every value: the amax of its block of 32 over 2 * 8191."""
    amax = np.abs(values.astype(np.float64)).reshape(values.shape[0], -1, 32).max(axis=2)
    return np.repeat(amax / 16382.0, 32, axis=1)


def int16_limit(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    hw, hx = half_steps(w), half_steps(x)
    rounding = hx @ np.abs(w64).T + np.abs(x64) @ hw.T + hx @ hw.T
    return 1.01 * rounding + EXACT_RELATIVE * (np.abs(x64) @ np.abs(w64).T)


@pytest.mark.parametrize(("rows", "k", "n"), [(37, 160, 16), (300, 288, 35), (37, 1280, 200), (30, 2080, 17)])
@pytest.mark.parametrize("ggml_type", FLOAT_TYPES)
def test_fast_on_float_weights(isa: str, ggml_type: str, rows: int, k: int, n: int) -> None:
    w, x = case(ggml_type, rows, k, n, seed=rows + k + n)
    w_float = ops.dequantize(w)
    out = ops.matmul(w, x, precision="fast", n_threads=2)
    exact = ops.matmul(w, x, precision="exact", n_threads=2)
    if isa not in INT16_ISAS:
        assert np.array_equal(out, exact)  # AVX2 / NEON: float math
        return
    reference = x.astype(np.float64) @ w_float.astype(np.float64).T
    assert np.all(np.abs(out - reference) <= int16_limit(w_float, x))
    rms = np.sqrt(np.mean((out - reference) ** 2) / np.mean(reference**2))
    assert 1e-5 < rms < INT16_RMS_RELATIVE  # the 16-bit rounding shows, within its budget
    ops.set_isa("scalar")
    scalar = ops.matmul(w, x, precision="fast", n_threads=1)
    ops.set_isa(isa)
    assert np.array_equal(out, scalar)


@pytest.mark.parametrize("ggml_type", FLOAT_TYPES)
def test_fast_on_float_weights_stays_float_below_16_rows_or_off_blocks(isa: str, ggml_type: str) -> None:
    w, x = case(ggml_type, 37, 160, 15, seed=5)
    assert np.array_equal(ops.matmul(w, x, precision="fast"), ops.matmul(w, x, precision="exact"))
    odd, y = case(ggml_type, 20, 40, 17, seed=6)  # k = 40: not whole blocks of 32
    assert np.array_equal(ops.matmul(odd, y, precision="fast"), ops.matmul(odd, y, precision="exact"))


def test_zero_and_tiny_blocks_give_zero_contributions(isa: str) -> None:
    """Blocks whose amax is below 1e-30 are stored as zeros: no inf or nan from 8191 / amax."""
    w, x = case("F32", 37, 96, 16, seed=7)
    x[:, :32] = 0.0
    x[:, 32:64] = 1e-35
    out = ops.matmul(w, x, precision="fast")
    assert np.all(np.isfinite(out))
    reference = x[:, 64:].astype(np.float64) @ ops.dequantize(w)[:, 64:].astype(np.float64).T
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-3)
