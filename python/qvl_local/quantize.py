"""Quantize a GGUF file: llama-quantize's per-tensor type recipes, our encoders, gguf-py's writer.

`quantize_gguf(src, dst, "Q4_K_M")` writes a file that llama.cpp and qvl_local both load:
- Tensor types follow llama.cpp's `llama_tensor_get_type` for the file types we offer (no imatrix, no
  overrides): 1-D tensors, norms and embeddings of positions or patches keep their type; with tied
  embeddings `token_embd` is quantized like `output` (Q6_K, or Q8_0 for a Q8_0 file); Q4_K_M and
  Q5_K_M give Q6_K to `attn_v` and `ffn_down` in the layers `use_more_bits` picks; a row length that
  the chosen type's block does not divide falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, else
  F16). The special cases for Falcon, 70B and 8-expert models are not modelled: this package runs
  Qwen2-VL.
- Vision projector files (architecture "clip", which llama-quantize does not read): every 2-D weight
  matrix gets the file type's base type (Q4_K for Q4_K_M; no mixture, whose rules are written for text
  layers); the patch and position embeddings, norms and biases keep their type.
- Tensors are written in llama-quantize's order (global tensors first, then layer by layer, by name);
  every metadata key and value is copied with its GGUF type, in order, except `general.file_type` and
  `general.quantization_version`, which are set as llama-quantize sets them.
- A tensor already in its target type is copied byte for byte; any other is decoded to float32 and
  encoded again (a quantized source loses quality twice: the report warns).
- The output is written next to the destination under a temporary name and renamed when complete.
"""
from __future__ import annotations

import errno
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

from . import ops
from .errors import ModelFormatError, QvlError
from .gguf_file import GGUFFile, TensorInfo
from .threads import thread_count


@dataclass(frozen=True)
class FileType:
    """A llama.cpp file type: its `general.file_type` number and the tensor type most weights get."""

    name: str
    number: int  # llama_ftype
    base_type: str


FILE_TYPES: dict[str, FileType] = {
    ft.name: ft
    for ft in (
        FileType("F32", 0, "F32"),
        FileType("F16", 1, "F16"),
        FileType("BF16", 32, "BF16"),
        FileType("Q4_0", 2, "Q4_0"),
        FileType("Q4_1", 3, "Q4_1"),
        FileType("Q8_0", 7, "Q8_0"),
        FileType("Q5_0", 8, "Q5_0"),
        FileType("Q5_1", 9, "Q5_1"),
        FileType("Q4_K_S", 14, "Q4_K"),
        FileType("Q4_K_M", 15, "Q4_K"),
        FileType("Q5_K_S", 16, "Q5_K"),
        FileType("Q5_K_M", 17, "Q5_K"),
        FileType("Q6_K", 18, "Q6_K"),
    )
}
QUANTIZATION_VERSION = 2  # GGML_QNT_VERSION, written by llama-quantize into every file
FLOAT_TYPES = ("F32", "F16", "BF16")

# llama.cpp's fallbacks when a row length is not a multiple of the type's block (256 for K-quants).
_ROW_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
# Weight names llama.cpp never quantizes (besides 1-D tensors and names not ending in "weight").
_KEPT_NAME_PARTS = ("_norm.weight", "ffn_gate_inp.weight", "position_embd", "token_types.weight", ".patch_embd",
                    ".patch_merger", ".rel_pos", "attn_rel_b.weight", "ssm_conv1d")
_ATTN_V_NAMES = ("attn_v.weight", "attn_qkv.weight", "attn_kv_b.weight")
_LAYER = re.compile(r"^blk\.(\d+)\.")
_CHUNK_VALUES = 1 << 22  # values per work item: bounds the float32 memory of one tensor to a few chunks


# ---------------------------------------------------------------------------------------------------
# Which type each tensor gets


def parse_file_type(name: str) -> FileType:
    """The file type named `name` ("q4_k_m" works too); ValueError listing the choices otherwise."""
    try:
        return FILE_TYPES[name.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown quantization type {name!r}; choose one of {', '.join(FILE_TYPES)}") from None


def llama_tensor_order(names: Sequence[str]) -> list[str]:
    """llama.cpp's weight order (global tensors, then by layer number, then by name); the recipe's
    layer counters follow it."""
    def key(name: str) -> tuple[int, str]:
        match = _LAYER.match(name)
        return (int(match.group(1)) if match else -1, name)

    return sorted(names, key=key)


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's choice of the layers that get more bits: the first and last eighth, and every
    third layer in between."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def allows_quantization(name: str, shape: Sequence[int]) -> bool:
    """Whether llama.cpp would quantize this tensor at all (shape in ggml order)."""
    dims = list(shape)
    while len(dims) > 1 and dims[-1] == 1:  # ggml_n_dims ignores trailing ones
        dims.pop()
    if len(dims) < 2 or not name.endswith("weight"):
        return False
    return not any(part in name for part in _KEPT_NAME_PARTS)


def plan_tensor_types(tensors: Sequence[tuple[str, Sequence[int], str]], file_type: FileType, *,
                      n_layers: int, vision: bool = False) -> dict[str, str]:
    """Target type per tensor, from (name, ggml shape, current type) triples, in llama.cpp's order."""
    shapes = {name: tuple(shape) for name, shape, _ in tensors}
    current = {name: type_name for name, _, type_name in tensors}
    order = llama_tensor_order(list(shapes))
    tied_embeddings = "output.weight" not in shapes
    n_attn_v = sum(1 for name in order if _is_attn_v(name))
    i_attn_v = i_ffn_down = 0
    plan: dict[str, str] = {}
    for name in order:
        if not allows_quantization(name, shapes[name]):
            plan[name] = current[name]
            continue
        target = file_type.base_type
        if target not in FLOAT_TYPES and not vision:
            if name == "output.weight" or (tied_embeddings and name == "token_embd.weight"):
                target = _output_type(file_type, shapes[name][0])
            elif _is_attn_v(name):
                target = _attn_v_type(file_type, i_attn_v, n_attn_v)
                i_attn_v += 1
            elif "ffn_down" in name:
                target = _ffn_down_type(file_type, i_ffn_down, n_layers)
                i_ffn_down += 1
        if target not in FLOAT_TYPES:
            target = _row_fallback(target, shapes[name][0])
        plan[name] = target
    return plan


def _is_attn_v(name: str) -> bool:
    return any(part in name for part in _ATTN_V_NAMES)


def _output_type(file_type: FileType, row_length: int) -> str:
    if row_length % ops.BLOCK_SIZES[file_type.base_type][0]:
        return "Q8_0"
    return "Q8_0" if file_type.base_type == "Q8_0" else "Q6_K"


def _attn_v_type(file_type: FileType, i_attn_v: int, n_attn_v: int) -> str:
    if file_type.name in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_attn_v, n_attn_v):
        return "Q6_K"
    if file_type.name == "Q4_K_S" and i_attn_v < 4:
        return "Q5_K"
    return file_type.base_type


def _ffn_down_type(file_type: FileType, i_layer: int, n_layers: int) -> str:
    if file_type.name in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_layer, n_layers):
        return "Q6_K"
    if file_type.name == "Q4_K_S" and i_layer < n_layers // 8:
        return "Q5_K"
    return file_type.base_type


def _row_fallback(target: str, row_length: int) -> str:
    if row_length % ops.BLOCK_SIZES[target][0] == 0:
        return target
    fallback = _ROW_FALLBACK.get(target)
    if fallback is not None and row_length % ops.BLOCK_SIZES[fallback][0] == 0:
        return fallback
    return "F16"  # llama.cpp does the same after a failed fallback; for 32-blocks it gives up instead


# ---------------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class TensorResult:
    name: str
    shape: tuple[int, ...]  # ggml order
    source_type: str
    type: str
    nbytes: int
    squared_error: float  # sum over values of (written - source)^2, float64
    squared_norm: float  # sum of source^2

    @property
    def relative_rms_error(self) -> float:
        return math.sqrt(self.squared_error / self.squared_norm) if self.squared_norm > 0 else 0.0


@dataclass(frozen=True)
class TypeSummary:
    type: str
    count: int
    nbytes: int
    relative_rms_error: float  # over all values of this type's tensors together
    max_relative_rms_error: float  # of the worst tensor


@dataclass
class QuantizeReport:
    """What `quantize_gguf` wrote. Errors compare the written values with the source's values (its
    float32 decoding): a quantized source's own error is not included."""

    source: Path
    destination: Path
    file_type: FileType
    tensors: list[TensorResult]
    source_bytes: int
    destination_bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def types(self) -> dict[str, str]:
        return {t.name: t.type for t in self.tensors}

    def by_type(self) -> list[TypeSummary]:
        """One summary per tensor type written, largest total first."""
        groups: dict[str, list[TensorResult]] = {}
        for tensor in self.tensors:
            groups.setdefault(tensor.type, []).append(tensor)
        summaries = []
        for type_name, members in groups.items():
            norm = sum(t.squared_norm for t in members)
            error = sum(t.squared_error for t in members)
            summaries.append(TypeSummary(
                type_name, len(members), sum(t.nbytes for t in members),
                math.sqrt(error / norm) if norm > 0 else 0.0, max(t.relative_rms_error for t in members),
            ))
        return sorted(summaries, key=lambda s: -s.nbytes)


# ---------------------------------------------------------------------------------------------------
# The file


Progress = Callable[[int, int, str], None]  # (tensors done, tensors in all, name of the one just written)


def quantize_gguf(source: str | os.PathLike[str], destination: str | os.PathLike[str], quant_type: str, *,
                  overwrite: bool = False, progress: bool | Progress = False,
                  n_threads: int | None = None) -> QuantizeReport:
    """Write `destination`, a copy of the GGUF `source` with its weights in `quant_type` (a llama.cpp
    file type name: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, F16, BF16, F32).

    `progress`: True shows a progress bar on stderr; a callable is called after every tensor.
    `n_threads`: as for load(): None uses every available core, fewer than 1 is a ValueError, more than
    a few per core are capped with a warning.
    Raises ValueError for an unknown type or a destination that is the source, FileExistsError if the
    destination exists (unless `overwrite`), ModelFormatError for a source we cannot read.
    """
    started = time.perf_counter()
    workers = thread_count(n_threads)
    file_type = parse_file_type(quant_type)
    source, destination = Path(source), Path(destination)
    src = GGUFFile(source)
    _check_destination(source, destination, overwrite)
    vision = src.architecture == "clip"
    tensors = list(src.tensors.values())
    plan = plan_tensor_types([(t.name, t.shape, t.type_name) for t in tensors], file_type,
                             n_layers=_block_count(src), vision=vision)
    _check_decodable(src, plan)
    metadata = _output_metadata(src, file_type)
    temporary = _reserve_temporary(destination)
    try:
        results = _write(src, temporary, metadata, plan, workers, _progress_callback(progress, len(plan)))
        _fsync(temporary)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return QuantizeReport(
        source=source, destination=destination, file_type=file_type, tensors=results,
        source_bytes=source.stat().st_size, destination_bytes=destination.stat().st_size,
        seconds=time.perf_counter() - started, warnings=_warnings(src, plan, file_type, vision),
    )


def _check_destination(source: Path, destination: Path, overwrite: bool) -> None:
    if destination.exists():
        if destination.resolve() == source.resolve():
            raise ValueError(f"the destination is the source file: {destination}")
        if not overwrite:
            raise FileExistsError(errno.EEXIST, "output file exists (overwrite=True, or --force, replaces it)",
                                  str(destination))
        if destination.is_dir():
            raise IsADirectoryError(errno.EISDIR, "output is a directory", str(destination))
    if not destination.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "output folder does not exist", str(destination.parent))


def _block_count(src: GGUFFile) -> int:
    count = src.get(f"{src.architecture}.block_count")
    if isinstance(count, int) and count > 0:
        return count
    layers = {int(m.group(1)) for name in src.tensors if (m := _LAYER.match(name))}
    return max(layers) + 1 if layers else 0


def _check_decodable(src: GGUFFile, plan: dict[str, str]) -> None:
    for name, target in plan.items():
        info = src.tensors[name]
        if target != info.type_name and info.type_name not in ops.TYPES:
            raise ModelFormatError(f"{src.path}: tensor '{name}' is {info.type_name}, which we cannot decode "
                                   f"(readable: {', '.join(ops.TYPES)})")


def _warnings(src: GGUFFile, plan: dict[str, str], file_type: FileType, vision: bool) -> list[str]:
    notes = []
    requantized = sorted({src.tensors[name].type_name for name, target in plan.items()
                          if target != src.tensors[name].type_name and src.tensors[name].type_name not in FLOAT_TYPES})
    if requantized:
        notes.append(f"the source is already quantized ({', '.join(requantized)}): its rounding errors and the new "
                     f"ones add up; quantize from the F16/F32 file for the best quality")
    block = ops.BLOCK_SIZES[file_type.base_type][0]
    odd_rows = [name for name in plan if allows_quantization(name, src.tensors[name].shape)
                and src.tensors[name].shape[0] % block]
    if odd_rows:
        notes.append(f"{len(odd_rows)} tensor(s) have rows of a length that {file_type.base_type}'s {block}-value "
                     f"blocks do not divide and use a fallback type (e.g. {odd_rows[0]}: {plan[odd_rows[0]]})")
    if vision:
        notes.append("vision projector (clip): every 2-D weight matrix gets one type; the patch embedding, "
                     "norms and biases are kept")
    return notes


# ---------------------------------------------------------------------------------------------------
# Metadata: the source's keys with their GGUF types


@dataclass(frozen=True)
class _Value:
    value: Any
    type: GGUFValueType
    element_type: GGUFValueType | None = None


def _output_metadata(src: GGUFFile, file_type: FileType) -> dict[str, _Value]:
    """The source's key/values with their types, in order, with llama-quantize's two changes."""
    metadata = {}
    for key, (value_type, element_type) in src.value_types.items():
        value = src.metadata[key]
        if value_type == GGUFValueType.ARRAY:
            value = value.tolist() if isinstance(value, np.ndarray) else list(value)
            if not value:  # gguf-py's writer refuses empty arrays
                raise QvlError(f"{src.path}: metadata array '{key}' is empty; gguf-py cannot write it")
        metadata[key] = _Value(value, value_type, element_type)
    # llama-quantize (gguf_set_val_u32) removes these two keys and appends them, in this order
    metadata.pop("general.quantization_version", None)
    metadata.pop("general.file_type", None)
    metadata["general.quantization_version"] = _Value(QUANTIZATION_VERSION, GGUFValueType.UINT32)
    metadata["general.file_type"] = _Value(file_type.number, GGUFValueType.UINT32)
    return metadata


# ---------------------------------------------------------------------------------------------------
# Writing


def _reserve_temporary(destination: Path) -> Path:
    """A new empty file beside the destination (same file system, so the final rename is atomic)."""
    while True:
        candidate = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(candidate, "xb"):
                return candidate
        except FileExistsError:
            continue


def _fsync(path: Path) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _write(src: GGUFFile, path: Path, metadata: dict[str, _Value], plan: dict[str, str], workers: int,
           progress: Progress | None) -> list[TensorResult]:
    writer = GGUFWriter(path, arch=src.architecture)  # writes general.architecture first
    alignment = src.get("general.alignment")
    if isinstance(alignment, int):
        writer.data_alignment = alignment
    for key, item in metadata.items():
        if key != "general.architecture":
            writer.add_key_value(key, item.value, item.type, item.element_type)
    for name, target in plan.items():
        info = src.tensors[name]
        writer.add_tensor_info(name, tuple(reversed(info.shape)), np.dtype(np.float32),
                               _rows(info) * ops.row_bytes(target, info.shape[0]), GGMLQuantizationType[target])
    results = []
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        with ThreadPoolExecutor(workers) as pool:
            for index, (name, target) in enumerate(plan.items()):
                data, result = _convert(src, src.tensors[name], target, pool)
                writer.write_tensor_data(data)
                results.append(result)
                if progress is not None:
                    progress(index + 1, len(plan), name)
    finally:
        writer.close()
    return results


def _rows(info: TensorInfo) -> int:
    return int(np.prod(info.shape[1:], dtype=np.int64)) if len(info.shape) > 1 else 1


def _convert(src: GGUFFile, info: TensorInfo, target: str, pool: ThreadPoolExecutor) -> tuple[np.ndarray, TensorResult]:
    """The tensor's bytes in `target` (the source's own bytes if it is in `target` already), and how far
    the written values are from the source's."""
    raw = src.tensor_bytes(info.name)
    copy = target == info.type_name
    if copy and info.type_name not in ops.TYPES:  # e.g. an I32 table: kept, nothing to measure
        return raw, TensorResult(info.name, info.shape, info.type_name, target, raw.size, 0.0, 0.0)
    rows, k = _rows(info), info.shape[0]
    source_rows = raw.reshape(rows, -1)
    out = source_rows if copy else np.empty((rows, ops.row_bytes(target, k)), dtype=np.uint8)
    step = max(1, _CHUNK_VALUES // k)

    def convert_rows(first: int) -> tuple[float, float]:
        last = min(rows, first + step)
        values = ops.dequantize(ops.QTensor(info.type_name, last - first, k, source_rows[first:last]))
        if copy:
            return 0.0, _sum_of_squares(values)
        encoded = ops.quantize(values, target)
        out[first:last] = encoded.data.reshape(last - first, -1)
        return _sum_of_squares(ops.dequantize(encoded) - values), _sum_of_squares(values)

    sums = list(pool.map(convert_rows, range(0, rows, step)))
    result = TensorResult(info.name, info.shape, info.type_name, target, out.size,
                          sum(s[0] for s in sums), sum(s[1] for s in sums))
    return out.reshape(-1), result


def _sum_of_squares(values: np.ndarray) -> float:
    flat = values.ravel().astype(np.float64)
    return float(np.dot(flat, flat))


def _progress_callback(progress: bool | Progress, total: int) -> Progress | None:
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="tensor", desc="quantizing", leave=False)

    def advance(done: int, total: int, name: str) -> None:
        bar.set_postfix_str(name, refresh=False)
        bar.update(1)
        if done == total:
            bar.close()

    return advance
