"""The decoder's causal attention on every ISA path agrees with the scalar path.

The vector kernels attend the query heads sharing one key/value head at several consecutive positions
together, along the lanes (24 on avx2, 48 on avx512 / amx), so the shapes below cover: every group
size 1..7 (grouped-query attention; 7 leaves lanes unused), position counts that are not a multiple
of the positions per group, a single decoded token, a prefix already in the KV cache (first > 0), and
head_dim 64 and 128. Only summation order differs from the scalar path: measured max difference
2.5e-6 of max |output| on this machine, so the tolerance of 1e-5 leaves 4x room. The avx512 kernel
does each lane's arithmetic in the avx2 kernel's order, so those two must agree bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest

from qvl_local import _core

MAX_RELATIVE_DIFFERENCE = 1e-5  # of max |scalar output|
N_KV_HEADS = 2
# (queries, keys already cached before them)
POSITIONS = [(1, 0), (1, 100), (37, 0), (53, 20), (200, 77)]


def attention_inputs(group: int, head_dim: int, n: int, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(group * 1000 + head_dim + n + first)
    n_keys = first + n
    q = 3 * rng.standard_normal((n, group * N_KV_HEADS * head_dim), dtype=np.float32)
    keys = rng.standard_normal((N_KV_HEADS, n_keys, head_dim), dtype=np.float32)
    values = rng.standard_normal((N_KV_HEADS, n_keys, head_dim), dtype=np.float32)
    return q, keys, values


def attend_with_isa(isa: str, q: np.ndarray, keys: np.ndarray, values: np.ndarray, n_heads: int) -> np.ndarray:
    before = _core.active_isa()
    try:
        _core.set_isa(isa)
        return _core.causal_attention(q, keys, values, n_heads, 2)
    finally:
        _core.set_isa(before)


@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("group", range(1, 8))
def test_every_isa_matches_scalar(isa, group, head_dim):
    n_heads = group * N_KV_HEADS
    for n, first in POSITIONS:
        q, keys, values = attention_inputs(group, head_dim, n, first)
        expected = attend_with_isa("scalar", q, keys, values, n_heads)
        actual = _core.causal_attention(q, keys, values, n_heads, 2)
        assert actual.shape == q.shape
        scale = float(np.abs(expected).max())
        assert np.abs(actual - expected).max() < MAX_RELATIVE_DIFFERENCE * scale, f"n={n} first={first}"


@pytest.mark.skipif(not {"avx2", "avx512"} <= set(_core.available_isas()), reason="needs the avx2 and avx512 paths")
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("group", range(1, 8))
def test_avx512_is_bit_identical_to_avx2(group, head_dim):
    for n, first in POSITIONS:
        q, keys, values = attention_inputs(group, head_dim, n, first)
        avx2 = attend_with_isa("avx2", q, keys, values, group * N_KV_HEADS)
        avx512 = attend_with_isa("avx512", q, keys, values, group * N_KV_HEADS)
        np.testing.assert_array_equal(avx512, avx2, err_msg=f"n={n} first={first}")


def test_the_first_query_sees_only_the_first_key(isa):
    """Causality: with nothing cached, position 0 attends to key 0 alone, so its output is value 0."""
    q, keys, values = attention_inputs(6, 64, 9, 0)
    out = _core.causal_attention(q, keys, values, 12, 2)
    first_position = out[0].reshape(N_KV_HEADS, 6, 64)
    np.testing.assert_array_equal(first_position, np.broadcast_to(values[:, :1, :], first_position.shape))


def test_bad_shapes_raise():
    q, keys, values = attention_inputs(2, 64, 4, 0)
    with pytest.raises(ValueError, match="n_kv_heads"):
        _core.causal_attention(q, keys, values, 3, 2)
    with pytest.raises(ValueError, match="keys and values"):
        _core.causal_attention(q, keys, values[:, :2], 4, 2)
    with pytest.raises(ValueError, match="q must"):
        _core.causal_attention(q[:, :64], keys, values, 4, 2)
