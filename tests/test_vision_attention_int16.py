"""Fast's int16 vision attention (ops/attention_tiles.h) against the float attention, and each ISA's.

Under precision="fast" the scalar path (the reference) and avx512 / amx attend on 16-bit integer blocks
(queries and keys in blocks of 32 dimensions, each block of 32 keys' probabilities as levels of its
max, values per channel in blocks of 32 keys; levels within +-8191, so every rounded quantity is off by
at most u = 1 / 16382 = 6.1e-5 of its block's largest magnitude); avx2 and neon attend in float.

What u makes of the output, relative RMS, on the inputs below (q, k, v standard normal: scores of
standard deviation 1, the weights spread over tens of keys), each rounding alone (a numpy model of the
format on 320 keys, head_dim 64): the values' ~1.3u (a weighted mean of their errors of up to u of the
block's max |v|); the probabilities' ~2.2u (half a level of weights that are mostly well below their
block's max, so off by more than u relative); the scores' ~1.9u (query and key each off by up to u of
their block's max, so the scores by ~u of |q||k| / sqrt(d), which the softmax turns into that much
relative error of the weights); together ~3.2u. Measured here: 2.9-3.1u RMS and 1.4-2.0u of max
|output| on every head_dim below. Limits: 5u RMS and 4u max; and above u / 2 RMS, so it is the int16
path that ran (float attention: ~1e-7).
The ISAs' own tiles do the same integer sums and float operations in the same order as the reference:
they agree to the bit (limit 1e-6 of max |output|, as tests/cpp/kernel_tests.cpp).
"""
from __future__ import annotations

import numpy as np
import pytest

from qvl_local import _core

U = 1.0 / 16382  # half a level step of a block's largest magnitude
INT16_RMS_RELATIVE = 5 * U
INT16_MAX_RELATIVE = 4 * U  # of max |float output|
INT16_MIN_RMS = U / 2
VS_REFERENCE_RELATIVE = 1e-6
N_HEADS = 2
# ragged segments: 140 rows (query tiles 48 + 48 + 44; key blocks 4 x 32 + 12), 1 (a lone key), 60
# (48 + 12), 31 (a short key block) and 97
SEGMENT_BOUNDS = [0, 140, 141, 201, 232, 329]
HEAD_DIMS = [64, 80, 72, 128, 36]  # 80 = 32 + 32 + 16 and 72 = 32 + 32 + 8: short dimension blocks
INT16_ISAS = [isa for isa in ("avx512", "amx") if isa in _core.available_isas()]


def qkv(head_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (SEGMENT_BOUNDS[-1], N_HEADS * head_dim)
    return tuple(rng.standard_normal(shape).astype(np.float32) for _ in range(3))


def attend(isa: str, precision: str, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    before = _core.active_isa()
    try:
        _core.set_isa(isa)
        return _core.vision_attention(q, k, v, SEGMENT_BOUNDS, N_HEADS, precision, 2)
    finally:
        _core.set_isa(before)


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_int16_attention_stays_within_its_format_of_float(head_dim):
    q, k, v = qkv(head_dim, seed=head_dim)
    float_out = attend("scalar", "exact", q, k, v)
    int16_out = attend("scalar", "fast", q, k, v)
    assert np.isfinite(int16_out).all()
    rms = float(np.sqrt(np.mean((int16_out - float_out) ** 2) / np.mean(float_out**2)))
    assert INT16_MIN_RMS < rms < INT16_RMS_RELATIVE
    assert np.abs(int16_out - float_out).max() < INT16_MAX_RELATIVE * np.abs(float_out).max()


@pytest.mark.skipif(not INT16_ISAS, reason="no ISA with vpdpwssd (avx512, amx) in this build or CPU")
@pytest.mark.parametrize("isa", INT16_ISAS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_isa_int16_attention_matches_the_reference(isa, head_dim):
    q, k, v = qkv(head_dim, seed=head_dim)
    expected = attend("scalar", "fast", q, k, v)
    actual = attend(isa, "fast", q, k, v)
    assert np.abs(actual - expected).max() <= VS_REFERENCE_RELATIVE * np.abs(expected).max()


@pytest.mark.parametrize("isa", [isa for isa in ("avx2", "neon") if isa in _core.available_isas()])
def test_fast_attends_in_float_without_vpdpwssd(isa):
    q, k, v = qkv(64, seed=1)
    assert np.array_equal(attend(isa, "fast", q, k, v), attend(isa, "exact", q, k, v))
