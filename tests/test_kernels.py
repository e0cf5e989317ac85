"""CPU kernels (qvl_local.ops) against gguf-py and float64 numpy, on every ISA this machine runs.

Error limits, and why:
- dequantize: bit-exact with gguf.quants.dequantize (same float32 operations in the same order).
- quantize: byte-exact with gguf.quants.quantize where gguf-py has an encoder (F16, BF16, Q8_0, Q4_0,
  Q4_1, Q5_0, Q5_1); for the K-quants (our own least-squares encoders) a round-trip RMS limit per type.
- Exact matmul: |out - ref| <= EXACT_RELATIVE * (|x| @ |W|.T), ref = float64 x @ W_deq.T. That right
  side is the scale of any float32 summation's rounding error, so the limit holds whatever the signs.
- Fast matmul: the activations are rounded to 8 bits, each value by at most half a step (block amax /
  254). The error is therefore bounded by sum_i |W_ri| * amax(block of i) / 254 (computed per case),
  plus the float32 rounding allowance of the Exact limit.
- Fast on an ISA vs Fast on the scalar reference: both compute the same integer block sums, so they
  differ only in float32 summation order: FAST_VS_SCALAR_RELATIVE * (|x| @ |W|.T).
- Int8 on float weights: the weight rows are encoded as Q8_0 on the fly, so the result is the Fast
  matmul of ops.quantize(W, "Q8_0") up to float summation order (FAST_VS_SCALAR_RELATIVE).
Fast matmuls with n >= 16 activation rows take the matrix-matrix (panel) kernels on AVX2 / AVX-512,
smaller n the row-dot kernels: the n values below cover both, and rows 37 / 257 partial 8- and 16-row
panels.
"""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qvl_local import _core, ops

EXACT_RELATIVE = 1e-5
FAST_VS_SCALAR_RELATIVE = 2e-6
# Round-trip RMS error / RMS of standard-normal data for our K-quant encoders (measured ~0.069, 0.034,
# 0.016: in line with 4, 5 and 6 bits), with a margin.
K_QUANT_RMS_LIMIT = {"Q4_K": 0.085, "Q5_K": 0.042, "Q6_K": 0.02}
GGUF_ENCODES = ("F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")
QUANTIZED = tuple(t for t in ops.TYPES if t not in ("F32", "F16", "BF16"))
ACTIVATION_BLOCK = {t: (256 if t.endswith("_K") else 32) for t in QUANTIZED}
# From this many activation rows on, the matrix-matrix kernels run, and they give the K-quants'
# activations a scale per sub-block (32 values, Q6_K's 16) instead of Q8_K's one per 256.
MATRIX_MATRIX_ROWS = 16
MATRIX_MATRIX_ACTIVATION_BLOCK = {**ACTIVATION_BLOCK, "Q4_K": 32, "Q5_K": 32, "Q6_K": 16}
# Byte offsets of the fp16 scale fields inside one block, to make random blocks decodable.
SCALE_FIELDS = {"Q8_0": (0,), "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2),
                "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def block_values(ggml_type: str) -> int:
    return ops.BLOCK_SIZES[ggml_type][0]


def gguf_dequantize(q: ops.QTensor) -> np.ndarray:
    raw = q.data.reshape(q.rows, -1)
    return gguf.quants.dequantize(raw, GGMLQuantizationType[q.ggml_type]).reshape(q.rows, q.k)


def random_blocks(ggml_type: str, rows: int, k: int, rng: np.random.Generator) -> ops.QTensor:
    """Random bytes in every field (so every bit of the layout is exercised), with finite fp16 scales."""
    if ggml_type in ("F32", "F16", "BF16"):
        return ops.quantize(rng.standard_normal((rows, k)).astype(np.float32), ggml_type)
    _, block_bytes = ops.BLOCK_SIZES[ggml_type]
    n_blocks = rows * k // block_values(ggml_type)
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for offset in SCALE_FIELDS[ggml_type]:
        scales = rng.uniform(-0.05, 0.05, n_blocks).astype(np.float16)
        blocks[:, offset:offset + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return ops.QTensor(ggml_type, rows, k, blocks.reshape(-1))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("ggml_type", ops.TYPES)
def test_dequantize_random_blocks_matches_gguf_bit_exact(isa: str, ggml_type: str) -> None:
    rng = np.random.default_rng(1)
    q = random_blocks(ggml_type, rows=5, k=512, rng=rng)
    assert same_bits(ops.dequantize(q), gguf_dequantize(q))


@pytest.mark.parametrize("ggml_type", ops.TYPES)
def test_our_encoding_decodes_identically_in_gguf(isa: str, ggml_type: str) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((6, 768)) * rng.uniform(0.01, 20.0, (6, 1))).astype(np.float32)
    q = ops.quantize(x, ggml_type)
    assert same_bits(ops.dequantize(q), gguf_dequantize(q))


@pytest.mark.parametrize("ggml_type", GGUF_ENCODES)
def test_quantize_bytes_match_gguf(isa: str, ggml_type: str) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((7, 256)) * rng.uniform(0.001, 100.0, (7, 1))).astype(np.float32)
    x[0, :32] = 0.0  # an all-zero block
    x[1, 5] = x[1, 6] = -np.abs(x[1]).max()  # two equal extremes
    expected = gguf.quants.quantize(x, GGMLQuantizationType[ggml_type]).view(np.uint8).reshape(-1)
    assert np.array_equal(ops.quantize(x, ggml_type).data, expected)


@pytest.mark.parametrize("ggml_type", sorted(K_QUANT_RMS_LIMIT))
def test_k_quant_round_trip_error(isa: str, ggml_type: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 1024)).astype(np.float32)
    error = ops.dequantize(ops.quantize(x, ggml_type)) - x
    assert np.sqrt(np.mean(error.astype(np.float64) ** 2)) <= K_QUANT_RMS_LIMIT[ggml_type]
    # No value may land further than one sub-block's range away: catches a misplaced level.
    assert np.abs(error).max() <= np.abs(x).max()


@pytest.mark.parametrize(
    "file_name", ["qwen2vl-tiny-Q4_K_M.gguf", "qwen2vl-tiny-Q8_0.gguf", "mmproj-qwen2vl-tiny-F16.gguf"])
def test_fixture_tensors_dequantize_like_gguf(fixtures: Path, file_name: str) -> None:
    reader = gguf.GGUFReader(fixtures / "gguf" / file_name)  # slow to open (the vocabulary): once per file
    checked = set()
    previous = ops.active_isa()
    try:
        for tensor in reader.tensors:
            q = ops.QTensor.from_gguf(tensor)
            rows = min(q.rows, 512)  # the 151936-row embedding: its first rows suffice
            head = ops.QTensor(q.ggml_type, rows, q.k, q.data[: rows * ops.row_bytes(q.ggml_type, q.k)])
            expected = gguf_dequantize(head)
            for isa in ops.available_isas():
                ops.set_isa(isa)
                assert same_bits(ops.dequantize(head), expected), f"{tensor.name} on {isa}"
            checked.add(q.ggml_type)
    finally:
        ops.set_isa(previous)
    wanted = {"qwen2vl-tiny-Q4_K_M.gguf": {"Q4_K", "Q6_K"}, "qwen2vl-tiny-Q8_0.gguf": {"Q8_0"},
              "mmproj-qwen2vl-tiny-F16.gguf": {"F16"}}[file_name]
    assert wanted <= checked


def reference_and_scale(q: ops.QTensor, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 x @ W_deq.T and |x| @ |W_deq|.T (the scale of float32 rounding errors)."""
    w = ops.dequantize(q).astype(np.float64)
    x64 = x.astype(np.float64)
    return x64 @ w.T, np.abs(x64) @ np.abs(w).T


def activation_rounding_bound(ggml_type: str, q: ops.QTensor, x: np.ndarray) -> np.ndarray:
    """Largest error 8-bit activations can cause: sum_i |W_ri| * amax(block of x_i) / 254."""
    blocks = MATRIX_MATRIX_ACTIVATION_BLOCK if x.shape[0] >= MATRIX_MATRIX_ROWS else ACTIVATION_BLOCK
    block = blocks[ggml_type]
    amax = np.abs(x.astype(np.float64)).reshape(x.shape[0], -1, block).max(axis=2)
    half_step = np.repeat(amax / 254.0, block, axis=1)
    return half_step @ np.abs(ops.dequantize(q).astype(np.float64)).T


def assert_fast_matches_scalar(isa: str, w: ops.QTensor, x: np.ndarray, out: np.ndarray) -> None:
    """`out` (Fast on `isa`) equals the scalar Fast reference up to float summation order."""
    ops.set_isa("scalar")
    scalar = ops.matmul(w, x, precision="fast", n_threads=1)
    ops.set_isa(isa)
    _, scale = reference_and_scale(w, x)
    assert np.all(np.abs(out - scalar) <= FAST_VS_SCALAR_RELATIVE * scale)


def random_case(ggml_type: str, rows: int, n: int, seed: int) -> tuple[ops.QTensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = 256 if ggml_type.endswith("_K") else 96
    w = ops.quantize((0.1 * rng.standard_normal((rows, k))).astype(np.float32), ggml_type)
    return w, rng.standard_normal((n, k)).astype(np.float32)


@pytest.mark.parametrize("rows", [37, 257])
@pytest.mark.parametrize("n", [1, 7, 33, 64])
@pytest.mark.parametrize("ggml_type", ops.TYPES)
def test_exact_matmul_matches_float64(isa: str, ggml_type: str, n: int, rows: int) -> None:
    w, x = random_case(ggml_type, rows, n, seed=rows * 100 + n)
    reference, scale = reference_and_scale(w, x)
    out = ops.matmul(w, x, precision="exact")
    assert out.shape == (n, rows) and out.dtype == np.float32
    assert np.all(np.abs(out - reference) <= EXACT_RELATIVE * scale)


# rows: 37 and 257 end on a short panel; 30 and 48 on a panel pair (AVX-512's 32-row register tiles)
# that is short or holds one panel only
@pytest.mark.parametrize("rows", [37, 257, 30, 48])
@pytest.mark.parametrize("n", [1, 7, 33, 64])
@pytest.mark.parametrize("ggml_type", QUANTIZED)
def test_fast_matmul_within_activation_rounding(isa: str, ggml_type: str, n: int, rows: int) -> None:
    w, x = random_case(ggml_type, rows, n, seed=rows * 100 + n + 1)
    reference, scale = reference_and_scale(w, x)
    limit = activation_rounding_bound(ggml_type, w, x) + EXACT_RELATIVE * scale
    out = ops.matmul(w, x, precision="fast")
    assert np.all(np.abs(out - reference) <= limit)


def rounded_activations(x: np.ndarray, block: int) -> np.ndarray:
    """x as 8-bit blocks with a scale each give it back: d * nearest-even(x * 127 / amax), in float32."""
    runs = x.astype(np.float32).reshape(x.shape[0], -1, block)
    amax = np.abs(runs).max(axis=2, keepdims=True)
    inverse = np.float32(127.0) / np.where(amax > 0, amax, np.float32(1.0))
    levels = np.rint(runs * inverse)
    return ((amax / np.float32(127.0)) * levels).reshape(x.shape).astype(np.float64)


def rounded_q8_k_activations(x: np.ndarray) -> np.ndarray:
    """x as ActQ8_K gives it back: a base d = amax / (127 * 16) per 256 values and per 32-value sub-block
    the smallest multiplier m (1..16) that holds its largest magnitude, q = nearest-even(x / (d * m))."""
    runs = x.astype(np.float32).reshape(x.shape[0], -1, 8, 32)
    sub_amax = np.abs(runs).max(axis=3, keepdims=True)
    amax = sub_amax.max(axis=2, keepdims=True)
    safe = np.where(amax > 0, amax, np.float32(1.0))
    base = safe / np.float32(127.0 * 16)
    m = np.clip(np.ceil(np.float32(16.0) * sub_amax / safe), 1, 16).astype(np.float32)
    levels = np.rint(runs * (np.float32(1.0) / (base * m)))
    return (base.astype(np.float64) * m * levels).reshape(x.shape)


@pytest.mark.parametrize("n", [8, 40])
@pytest.mark.parametrize("ggml_type", ["Q4_K", "Q5_K", "Q6_K"])
def test_k_quant_activation_blocks(isa: str, ggml_type: str, n: int) -> None:
    """The K-quants' Fast product is the float product of the weights and the activations as rounded by
    ActQ8_K (a multiple of a per-256 base per 32-value sub-block) in the row-dot kernels (n < 16), and
    by blocks of 32 (Q6_K: 16) with a scale each in the matrix-matrix ones: up to float summation order,
    and far from llama.cpp's Q8_K (one scale per 256 values)."""
    rng = np.random.default_rng(n)
    w = ops.quantize((0.1 * rng.standard_normal((37, 512))).astype(np.float32), ggml_type)
    x = (rng.standard_normal((n, 512)) * rng.uniform(0.1, 10.0, (n, 512))).astype(np.float32)
    weights = ops.dequantize(w).astype(np.float64)
    _, scale = reference_and_scale(w, x)
    if n >= MATRIX_MATRIX_ROWS:
        rounded = rounded_activations(x, MATRIX_MATRIX_ACTIVATION_BLOCK[ggml_type])
    else:
        rounded = rounded_q8_k_activations(x)
    out = ops.matmul(w, x, precision="fast")
    assert np.all(np.abs(out - rounded @ weights.T) <= 1e-5 * scale)
    assert not np.all(np.abs(out - rounded_activations(x, 256) @ weights.T) <= 1e-4 * scale)


@pytest.mark.parametrize("n", [1, 7, 64])
@pytest.mark.parametrize("ggml_type", QUANTIZED)
def test_fast_matches_scalar_reference(isa: str, ggml_type: str, n: int) -> None:
    w, x = random_case(ggml_type, 257, n, seed=n + 7)
    assert_fast_matches_scalar(isa, w, x, ops.matmul(w, x, precision="fast"))


@pytest.mark.parametrize("n", [16, 40])
@pytest.mark.parametrize("ggml_type", ["F32", "F16", "BF16"])
def test_int8_on_float_weights_is_fast_q8_0(isa: str, ggml_type: str, n: int) -> None:
    rng = np.random.default_rng(n)
    w = ops.quantize((0.1 * rng.standard_normal((37, 160))).astype(np.float32), ggml_type)
    x = rng.standard_normal((n, 160)).astype(np.float32)
    as_q8_0 = ops.quantize(ops.dequantize(w), "Q8_0")
    _, scale = reference_and_scale(w, x)
    out = ops.matmul(w, x, precision="int8")
    assert np.all(np.abs(out - ops.matmul(as_q8_0, x, precision="fast")) <= FAST_VS_SCALAR_RELATIVE * scale)
    # and it is not the float path: Q8_0's weight rounding shows
    assert not np.allclose(out, ops.matmul(w, x, precision="exact"), rtol=0, atol=1e-4)
    # below 16 activation rows float weights stay float
    assert np.array_equal(ops.matmul(w, x[:15], precision="int8"), ops.matmul(w, x[:15], precision="exact"))


def test_int8_is_fast_on_quantized_weights_and_exact_where_k_is_not_blockwise(isa: str) -> None:
    w, x = random_case("Q4_K", 40, 33, seed=3)
    assert np.array_equal(ops.matmul(w, x, precision="int8"), ops.matmul(w, x, precision="fast"))
    rng = np.random.default_rng(4)
    odd = ops.quantize(rng.standard_normal((20, 40)).astype(np.float32), "F16")  # k = 40: no Q8_0 rows
    y = rng.standard_normal((17, 40)).astype(np.float32)
    assert np.array_equal(ops.matmul(odd, y, precision="int8"), ops.matmul(odd, y, precision="exact"))


@pytest.mark.parametrize("ggml_type", ["Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"])
def test_streamed_decode_split_matches_scalar_reference(isa: str, ggml_type: str) -> None:
    """1029 rows: the decode path's per-thread regions (>= 512 rows), with pieces past the last row."""
    w, x = random_case(ggml_type, 1029, 3, seed=29)
    out = ops.matmul(w, x, precision="fast", n_threads=3)
    assert_fast_matches_scalar(isa, w, x, out)
    assert np.array_equal(out, ops.matmul(w, x, precision="fast", n_threads=2))


@pytest.mark.parametrize("order", ["streams", "adjacent"])
@pytest.mark.parametrize("ggml_type", ["Q4_K", "Q5_K", "Q6_K"])
def test_k_quant_decode_row_orders_match_scalar_reference(isa: str, ggml_type: str, order: str) -> None:
    """Both ways the AVX-512 K-quant decode kernels walk the rows (ops.set_decode_row_order; the CPU picks
    one): 1029 rows, the 8-row tiles and streams and the rows left over."""
    rng = np.random.default_rng(5)
    w = ops.quantize((0.1 * rng.standard_normal((1029, 512))).astype(np.float32), ggml_type)
    x = rng.standard_normal((2, 512)).astype(np.float32)
    ops.set_decode_row_order(order)
    try:
        out = ops.matmul(w, x, precision="fast", n_threads=2)
    finally:
        ops.set_decode_row_order("auto")
    assert_fast_matches_scalar(isa, w, x, out)


def test_decode_row_order_names() -> None:
    with pytest.raises(ValueError, match="streams"):
        ops.set_decode_row_order("diagonal")


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize(("ggml_type", "k"), [("Q8_0", 1312), ("Q4_0", 1312), ("Q4_K", 1280), ("Q5_K", 1280),
                                                ("Q6_K", 1280)])
def test_decode_kernels_over_long_rows_match_scalar_reference(isa: str, ggml_type: str, k: int, n: int) -> None:
    """Rows of 41 blocks (the AVX-512 kernels' 4-block groups and a leftover block) or 5 super-blocks,
    1029 rows (their 4- and 8-row streams and the leftover rows)."""
    rng = np.random.default_rng(k + n)
    w = ops.quantize((0.1 * rng.standard_normal((1029, k))).astype(np.float32), ggml_type)
    x = rng.standard_normal((n, k)).astype(np.float32)
    assert_fast_matches_scalar(isa, w, x, ops.matmul(w, x, precision="fast", n_threads=2))


@pytest.mark.parametrize("ggml_type", ["F16", "Q8_0", "Q4_K", "Q6_K"])
def test_matrix_matrix_paths_over_long_rows(isa: str, ggml_type: str) -> None:
    """k = 1280: the Exact GEMM's several k-slices (of 256) and a Q6_K row of 80 panel blocks."""
    rng = np.random.default_rng(14)
    w = ops.quantize((0.1 * rng.standard_normal((40, 1280))).astype(np.float32), ggml_type)
    x = rng.standard_normal((23, 1280)).astype(np.float32)
    reference, scale = reference_and_scale(w, x)
    assert np.all(np.abs(ops.matmul(w, x, precision="exact") - reference) <= EXACT_RELATIVE * scale)
    if ggml_type in QUANTIZED:
        limit = activation_rounding_bound(ggml_type, w, x) + EXACT_RELATIVE * scale
        assert np.all(np.abs(ops.matmul(w, x, precision="fast") - reference) <= limit)


@pytest.mark.parametrize("ggml_type", ["Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"])
def test_matrix_matrix_fast_matches_scalar_reference_over_long_rows(isa: str, ggml_type: str) -> None:
    """k = 1280 (5 super-blocks: the AMX Q4_K kernel scales one while the tile unit works on the next),
    37 rows (a partial panel), 40 activation rows (two full tiles of 16 and a padded one of 8)."""
    rng = np.random.default_rng(41)
    w = ops.quantize((0.1 * rng.standard_normal((37, 1280))).astype(np.float32), ggml_type)
    x = rng.standard_normal((40, 1280)).astype(np.float32)
    assert_fast_matches_scalar(isa, w, x, ops.matmul(w, x, precision="fast", n_threads=2))


@pytest.mark.parametrize("n", [9, 40])  # 40: the matrix-matrix (panel) path of the Fast kernels
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_matmul_is_the_same_on_any_thread_count(precision: str, n: int) -> None:
    w, x = random_case("Q4_K", 257, n, seed=11)
    one = ops.matmul(w, x, precision=precision, n_threads=1)
    assert np.array_equal(one, ops.matmul(w, x, precision=precision, n_threads=2))
    assert np.array_equal(one, ops.matmul(w, x, precision=precision, n_threads=3))


def test_vector_input_gives_vector_output() -> None:
    w, x = random_case("Q8_0", 37, 1, seed=12)
    assert np.array_equal(ops.matmul(w, x[0]), ops.matmul(w, x)[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ggml_type=st.sampled_from(ops.TYPES),
    rows=st.integers(1, 9),
    blocks=st.integers(1, 3),
    n=st.integers(1, 5),
    log_scale=st.integers(-20, 4),
    zero_fraction=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_finite_and_exact(ggml_type: str, rows: int, blocks: int, n: int, log_scale: int,
                                   zero_fraction: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = blocks * (256 if ggml_type.endswith("_K") else 32)
    weights = rng.standard_normal((rows, k)) * 10.0 ** log_scale
    weights[rng.random((rows, k)) < zero_fraction] = 0.0
    q = ops.quantize(weights.astype(np.float32), ggml_type)
    x = rng.standard_normal((n, k)).astype(np.float32)
    w_deq = ops.dequantize(q)
    assert np.all(np.isfinite(w_deq))
    reference, scale = reference_and_scale(q, x)
    exact = ops.matmul(q, x, precision="exact")
    assert np.all(np.abs(exact - reference) <= EXACT_RELATIVE * scale + 1e-30)
    fast = ops.matmul(q, x, precision="fast")
    assert np.all(np.isfinite(fast))


def test_errors_are_python_exceptions() -> None:
    w, x = random_case("Q4_0", 37, 2, seed=13)
    with pytest.raises(ValueError, match="shape"):
        ops.matmul(w, x[:, :64])
    with pytest.raises(ValueError, match="precision"):
        ops.matmul(w, x, precision="approximate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple of 256"):
        ops.quantize(np.zeros((2, 96), np.float32), "Q4_K")
    with pytest.raises(ValueError, match="unsupported"):
        ops.quantize(np.zeros((2, 32), np.float32), "Q2_K")
    with pytest.raises(ValueError, match="bytes"):
        ops.QTensor("Q8_0", 2, 32, np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="ISA"):
        ops.set_isa("sse9")


def test_type_and_precision_names_come_from_the_core() -> None:
    """ops.py holds no list of its own: the types, their block geometry and the precisions are _core's."""
    from typing import get_args

    assert ops.BLOCK_SIZES == dict(_core.type_blocks())
    assert ops.TYPES == ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")
    assert ops.BLOCK_SIZES["Q4_K"] == (256, 144) and ops.BLOCK_SIZES["Q5_1"] == (32, 24)
    for name, (values, block_bytes) in ops.BLOCK_SIZES.items():
        assert gguf.GGML_QUANT_SIZES[GGMLQuantizationType[name]] == (values, block_bytes), name
    assert ops.PRECISIONS == tuple(_core.precisions()) == get_args(ops.Precision) == ("exact", "fast", "int8")
