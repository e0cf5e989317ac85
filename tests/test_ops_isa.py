"""The model's ops (norms, activations, RoPE, softmax, vision attention) on every ISA path.

Each op runs through its `_core` test binding on the active ISA (the `isa` fixture sets each path this
machine has) and is held to the scalar reference, and the scalar reference to a float64 numpy one.
Row lengths leave a partial vector on every ISA (8 lanes on avx2, 16 on avx512, 4 on neon).
Limits, measured on this machine (AMD EPYC, avx2 / avx512):
- norms and RoPE: the vector paths take the same steps as the reference in the same order (the
  statistics in double, only the order of the double sums differs): 0 difference here; limit 1e-6 of
  the largest |output|. Against float64: 1e-6.
- softmax, per value: the reference sums n floats in order, so its normalisation is good to n * 2^-24
  relative (the bound of a sequential float sum), and exp's argument x - max, rounded to float, costs
  |x - max| ulps of the result; the vector paths sum in another order. Limit (n + 4 + |x - max|) * 2^-24
  relative against float64, twice that between paths.
- activations, per value: exp within ~2 ulp, erf by Abramowitz & Stegun 7.1.26 (1.5e-7), GELU-tanh
  as x * sigmoid(2u) (no cancellation, unlike the reference's 1 + tanh(u)): at most 2.4e-7 * max(1,
  |x|); limit 1e-6 * max(1, |x|). Against float64: 1e-6 * max(1, |x|) as well.
- vision attention: as test_vision_attention_isa.py (only summation order differs), 1e-5 of the
  largest |output|.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from qvl_local import _core

ROW_LENGTHS = [1, 7, 37, 80, 1541]
ROW_RELATIVE = 1e-6
ACTIVATION_RELATIVE = 1e-6
ATTENTION_RELATIVE = 1e-5


def on_scalar(fn):
    before = _core.active_isa()
    try:
        _core.set_isa("scalar")
        return fn()
    finally:
        _core.set_isa(before)


def rows(n: int, seed: int, scale: float = 2.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal((3, n))).astype(np.float32)


def assert_near_scalar(fn, relative: float) -> np.ndarray:
    expected, actual = on_scalar(fn), fn()
    assert actual.shape == expected.shape and actual.dtype == np.float32
    assert np.abs(actual - expected).max() <= relative * np.abs(expected).max()
    return expected


@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_rms_norm(isa, n):
    x, weight = rows(n, n), rows(n, n + 1)[0]
    expected = assert_near_scalar(lambda: _core.rms_norm(x, weight, 1e-6), ROW_RELATIVE)
    x64 = x.astype(np.float64)
    reference = x64 / np.sqrt((x64 * x64).mean(axis=1, keepdims=True) + 1e-6) * weight
    assert np.abs(expected - reference).max() <= ROW_RELATIVE * np.abs(reference).max()


@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_layer_norm(isa, n):
    x, weight, bias = rows(n, n) + 5.0, rows(n, n + 1)[0], rows(n, n + 2)[0]
    expected = assert_near_scalar(lambda: _core.layer_norm(x, weight, bias, 1e-6), ROW_RELATIVE)
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=1, keepdims=True)
    reference = centered / np.sqrt((centered * centered).mean(axis=1, keepdims=True) + 1e-6) * weight + bias
    assert np.abs(expected - reference).max() <= ROW_RELATIVE * np.abs(reference).max()


def test_rms_norm_per_head_is_rms_norm_of_each_head(isa):
    """Qwen3's q/k norm: each head of head_dim values with the same head_dim weights."""
    heads, weight = rows(128, 3)[:2].reshape(4, 64), rows(64, 4)[0]
    per_head = _core.rms_norm_heads(heads, weight, 1e-6)
    np.testing.assert_array_equal(per_head, _core.rms_norm(heads, weight, 1e-6))


@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_softmax(isa, n):
    x = 4 * rows(n, n)
    expected, actual = on_scalar(lambda: _core.activation("softmax", x)), _core.activation("softmax", x)
    x64 = x.astype(np.float64)
    reference = np.exp(x64 - x64.max(axis=1, keepdims=True))
    reference /= reference.sum(axis=1, keepdims=True)
    # the sum's rounding, and exp's argument x - max rounded to float: |x - max| ulps of the result
    limit = (n + 4 + np.abs(x64 - x64.max(axis=1, keepdims=True))) * 2.0**-24 * reference + 1e-30
    assert np.all(np.abs(actual - expected) <= 2 * limit)
    assert np.all(np.abs(expected - reference) <= limit)


def reference_activation(name: str, x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    if name == "quick_gelu":
        return x / (1 + np.exp(-1.702 * x))
    if name == "gelu":
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)  # gelu_tanh, as PyTorch's approximate="tanh"
    return 0.5 * x * (1 + np.tanh(inner))


def activation_inputs() -> np.ndarray:
    x = 3 * np.random.default_rng(7).standard_normal(1003)
    x[:5] = [0.0, -12.0, 12.0, -90.0, 90.0]  # both clamps of exp
    return x.astype(np.float32)


@pytest.mark.parametrize("name", ["quick_gelu", "gelu", "gelu_tanh"])
def test_activation(isa, name):
    x = activation_inputs()
    expected, actual = on_scalar(lambda: _core.activation(name, x)), _core.activation(name, x)
    limit = ACTIVATION_RELATIVE * np.maximum(1.0, np.abs(x))
    assert np.all(np.abs(actual - expected) <= limit)
    assert np.all(np.abs(expected - reference_activation(name, x)) <= limit)


def test_silu_mul(isa):
    gate, up = activation_inputs(), np.random.default_rng(8).standard_normal(1003).astype(np.float32)
    expected, actual = on_scalar(lambda: _core.silu_mul(gate, up)), _core.silu_mul(gate, up)
    limit = ACTIVATION_RELATIVE * np.maximum(1.0, np.abs(gate)) * np.maximum(1.0, np.abs(up))
    assert np.all(np.abs(actual - expected) <= limit)
    g64 = gate.astype(np.float64)
    assert np.all(np.abs(expected - g64 / (1 + np.exp(-g64)) * up) <= limit)


@pytest.mark.parametrize("head_dim", [6, 64, 80, 128])
def test_rope(isa, head_dim):
    """Pairs (j, j + head_dim / 2) turned by angle j: the decoder's M-RoPE and the ViT's 2-D rope."""
    heads = rows(3 * head_dim, head_dim)[0].reshape(3, head_dim)
    angles = 0.37 * (11 * np.arange(head_dim // 2) + 1)
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    expected = assert_near_scalar(lambda: _core.rope(heads, cos, sin), ROW_RELATIVE)
    first, second = heads[:, : head_dim // 2].astype(np.float64), heads[:, head_dim // 2 :].astype(np.float64)
    reference = np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=1)
    assert np.abs(expected - reference).max() <= ROW_RELATIVE * np.abs(reference).max()


# 140 rows (query blocks 48 + 48 + 44, key blocks 64 + 64 + 12), 60 (48 + 12) and 24; head_dim 64,
# and 36 (4 mod 8: avx512's 4-row tail steps).
SEGMENT_BOUNDS = [0, 140, 200, 224]


@pytest.mark.parametrize("head_dim", [64, 36])
def test_vision_attention(isa, head_dim):
    n_heads, n_rows = 3, SEGMENT_BOUNDS[-1]
    q, k, v = (2 * np.random.default_rng(head_dim + i).standard_normal((n_rows, n_heads * head_dim)) for i in range(3))
    q, k, v = (a.astype(np.float32) for a in (q, k, v))
    expected = assert_near_scalar(
        lambda: _core.vision_attention(q, k, v, SEGMENT_BOUNDS, n_heads, "exact", 2), ATTENTION_RELATIVE
    )
    reference = np.empty((n_rows, n_heads * head_dim))
    for first, end in zip(SEGMENT_BOUNDS, SEGMENT_BOUNDS[1:]):
        for h in range(n_heads):
            columns = slice(h * head_dim, (h + 1) * head_dim)
            scores = q[first:end, columns].astype(np.float64) @ k[first:end, columns].T / math.sqrt(head_dim)
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            reference[first:end, columns] = weights / weights.sum(axis=1, keepdims=True) @ v[first:end, columns]
    assert np.abs(expected - reference).max() <= ATTENTION_RELATIVE * np.abs(reference).max()


def test_bad_arguments_raise():
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match="weight"):
        _core.rms_norm(x, np.ones(7, np.float32), 1e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        _core.activation("relu", x)
    with pytest.raises(ValueError, match="cos"):
        _core.rope(x, np.ones(3, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="segment"):
        _core.vision_attention(x, x, x, [0, 3], 2, "exact", 1)
