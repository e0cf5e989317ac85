"""CPU kernels from Python: quantize, dequantize and multiply GGUF-typed matrices.

Weights are `QTensor`s: a GGUF type name, a shape (rows, k) and the raw GGUF bytes, used in place
(a tensor from `gguf.GGUFReader` is a view into the memory-mapped file and is never copied).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import _core

# The C++ core is the one source of the type and precision names.
BLOCK_SIZES: dict[str, tuple[int, int]] = dict(_core.type_blocks())  # type -> (values, bytes) per block
TYPES: tuple[str, ...] = tuple(BLOCK_SIZES)
PRECISIONS: tuple[str, ...] = tuple(_core.precisions())
Precision = Literal["exact", "fast", "int8"]  # for type checkers: PRECISIONS spelled out (a test keeps them equal)


def row_bytes(ggml_type: str, k: int) -> int:
    """Bytes of one row of k values of `ggml_type`."""
    block_values, block_bytes = _geometry(ggml_type)
    if k <= 0 or k % block_values:
        raise ValueError(f"{ggml_type} rows need a positive multiple of {block_values} values, got {k}")
    return k // block_values * block_bytes


@dataclass(frozen=True)
class QTensor:
    """A (rows, k) matrix in a GGUF tensor type; `data` holds rows * row_bytes(type, k) bytes."""

    ggml_type: str
    rows: int
    k: int
    data: np.ndarray

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.dtype != np.uint8:
            data = data.view(np.uint8)
        data = data.reshape(-1)
        expected = self.rows * row_bytes(self.ggml_type, self.k)
        if data.size != expected:
            raise ValueError(f"{self.ggml_type} {self.rows}x{self.k} needs {expected} bytes, got {data.size}")
        object.__setattr__(self, "data", data)

    @classmethod
    def from_gguf(cls, tensor: Any) -> QTensor:
        """Wrap a `gguf.ReaderTensor` (ggml shape [k, rows, ...]); higher dimensions fold into rows."""
        shape = [int(n) for n in tensor.shape]
        k = shape[0]
        rows = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        data = np.asarray(tensor.data)
        return cls(tensor.tensor_type.name, rows, k, data.view(np.uint8).reshape(-1))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.k)


def quantize(array: np.ndarray, ggml_type: str) -> QTensor:
    """Encode a float32 (rows, k) array as `ggml_type` (our reference encoders)."""
    x = np.ascontiguousarray(array, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"quantize expects a 2-D array, got shape {x.shape}")
    row_bytes(ggml_type, x.shape[1])
    return QTensor(ggml_type, x.shape[0], x.shape[1], _core.quantize(x, ggml_type).reshape(-1))


def dequantize(q: QTensor) -> np.ndarray:
    """Decode to float32 (rows, k), bit for bit as gguf.quants.dequantize does."""
    return _core.dequantize(q.data, q.ggml_type, q.rows, q.k)


def matmul(w: QTensor, x: np.ndarray, *, precision: Precision = "exact", n_threads: int | None = None) -> np.ndarray:
    """x @ W.T for float32 x of shape (n, k) (or (k,)): float32 (n, rows) (or (rows,)).

    "exact" multiplies float activations with the dequantized weights; "fast" quantizes the
    activations to 8 bits and uses integer dot products, as llama.cpp does (float weights, F32/F16/BF16:
    with n >= 16 and k a multiple of 32, weights and activations as 16-bit integer blocks on the
    AVX-512 paths, ~1e-4 relative error; float math elsewhere); "int8" is "fast" that also encodes
    float weights (k a multiple of 32) as Q8_0 on the fly.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    xs = np.ascontiguousarray(x, dtype=np.float32)
    vector = xs.ndim == 1
    xs = xs.reshape(1, -1) if vector else xs
    if xs.ndim != 2 or xs.shape[1] != w.k:
        raise ValueError(f"x must have shape (n, {w.k}), got {np.shape(x)}")
    if n_threads is not None and n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    out = _core.matmul(w.data, w.ggml_type, w.rows, w.k, xs, precision, n_threads or 0)
    return out[0] if vector else out


def set_isa(name: str) -> None:
    """Force the kernel path: "scalar", "avx2", "avx512", "amx" or "neon" (ValueError if this CPU/build lacks it)."""
    _core.set_isa(name)


def set_decode_row_order(order: str) -> None:
    """How the AVX-512 decode kernels of the K-quants walk the rows: "auto" (the CPU's choice),
    "streams" or "adjacent" (tests and benchmarks; ValueError for another name)."""
    _core.set_decode_row_order(order)


def active_isa() -> str:
    return _core.active_isa()


def available_isas() -> list[str]:
    return list(_core.available_isas())


def _geometry(ggml_type: str) -> tuple[int, int]:
    try:
        return BLOCK_SIZES[ggml_type]
    except KeyError:
        raise ValueError(f"unsupported tensor type {ggml_type!r} (supported: {', '.join(TYPES)})") from None
