"""Qwen2-VL-shaped GGUF files with random weights, for benchmarks that need no download.

The text model is written once in F16 (norms and biases in F32, as llama.cpp's converter does) and
every quantized file is made from it with llama-quantize's recipes; the vision projector (mmproj)
stays in F16. Weights are N(0, 0.02), norm weights about 1, so activations keep realistic scales.
The tokenizer (vocabulary, merges, special tokens, chat template) is the real Qwen2 one, copied
from a small fixture model, so prompts tokenize and chat templates render as with the real model.

Files live in `.bench-cache/` at the repository root and are made only when missing.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from qvl_local import ops
from qvl_local.gguf_file import GGUFFile

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".bench-cache"
TOKENIZER_FIXTURE = Path("gguf") / "qwen2vl-tiny-Q8_0.gguf"
QUANT_TYPES = ("F16", "Q8_0", "Q4_K_M", "Q4_0")
WEIGHT_STD = 0.02
K_BLOCK = 256  # values per K-quant block: narrower rows fall back to legacy types, as llama.cpp does
FILE_TYPES = {"F16": 1, "Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}  # general.file_type (llama_ftype)


@dataclass(frozen=True)
class TextShape:
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    mrope_sections: tuple[int, int, int]


@dataclass(frozen=True)
class VisionShape:
    width: int
    layers: int
    heads: int
    mlp: int
    patch: int = 14
    merge: int = 2


@dataclass(frozen=True)
class BenchShape:
    name: str
    text: TextShape
    vision: VisionShape


QWEN2VL_2B = BenchShape(
    "qwen2vl-2b-shape",
    TextShape(hidden=1536, layers=28, intermediate=8960, heads=12, kv_heads=2, mrope_sections=(16, 24, 24)),
    VisionShape(width=1280, layers=32, heads=16, mlp=5120),
)
# Small enough that every file is written and run in seconds; widths under 256 take llama.cpp's
# fallback types for K-quant recipes, which this shape therefore exercises too.
QUICK = BenchShape(
    "quick",
    TextShape(hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, mrope_sections=(2, 3, 3)),
    VisionShape(width=64, layers=2, heads=4, mlp=128),
)


def default_fixtures_dir() -> Path:
    return Path(os.environ.get("QVL_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


@dataclass(frozen=True)
class BenchFiles:
    text: dict[str, Path]  # quant type -> text model GGUF
    mmproj: Path


def ensure_models(shape: BenchShape, quant_types: tuple[str, ...], tokenizer_gguf: Path,
                  cache_dir: Path = CACHE_DIR, n_threads: int = 1, log: Callable[[str], None] = print) -> BenchFiles:
    """The cached files for `shape`, writing the missing ones (F16 first: the others come from it)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    f16_path = cache_dir / f"{shape.name}-F16.gguf"
    _write_once(f16_path, lambda p: write_text_f16(p, shape.text, tokenizer_gguf), log)
    text = {}
    for quant in quant_types:
        path = cache_dir / f"{shape.name}-{quant}.gguf"
        if quant != "F16":
            _write_once(path, lambda p, q=quant: quantize_text(f16_path, p, q, shape.text.layers, n_threads), log)
        text[quant] = path if quant != "F16" else f16_path
    mmproj = cache_dir / f"mmproj-{shape.name}-F16.gguf"
    _write_once(mmproj, lambda p: write_mmproj_f16(p, shape.vision, out_width=shape.text.hidden), log)
    return BenchFiles(text, mmproj)


def _write_once(path: Path, write: Callable[[Path], None], log: Callable[[str], None]) -> None:
    """Writes through a temporary name, so an interrupted run never leaves a truncated cache entry."""
    if path.is_file():
        return
    log(f"writing {path} ...")
    partial = path.with_name(path.name + ".partial")
    write(partial)
    partial.rename(path)


# -- the text model ---------------------------------------------------------------------------------


def text_tensor_shapes(shape: TextShape, vocab: int) -> dict[str, tuple[int, ...]]:
    """name -> numpy shape (rows, cols), in the converter's order; tied embeddings (no output.weight)."""
    head_dim = shape.hidden // shape.heads
    kv_width = shape.kv_heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (vocab, shape.hidden)}
    for i in range(shape.layers):
        block = f"blk.{i}"
        shapes[f"{block}.attn_norm.weight"] = (shape.hidden,)
        for name, width in (("attn_q", shape.hidden), ("attn_k", kv_width), ("attn_v", kv_width)):
            shapes[f"{block}.{name}.weight"] = (width, shape.hidden)
            shapes[f"{block}.{name}.bias"] = (width,)
        shapes[f"{block}.attn_output.weight"] = (shape.hidden, shape.hidden)
        shapes[f"{block}.ffn_norm.weight"] = (shape.hidden,)
        shapes[f"{block}.ffn_gate.weight"] = (shape.intermediate, shape.hidden)
        shapes[f"{block}.ffn_up.weight"] = (shape.intermediate, shape.hidden)
        shapes[f"{block}.ffn_down.weight"] = (shape.hidden, shape.intermediate)
    shapes["output_norm.weight"] = (shape.hidden,)
    return shapes


def write_text_f16(path: Path, shape: TextShape, tokenizer_gguf: Path) -> None:
    tokenizer = GGUFFile(tokenizer_gguf)
    vocab = len(tokenizer.require("tokenizer.ggml.tokens"))
    writer = gguf.GGUFWriter(path, "qwen2vl")
    _add_text_metadata(writer, shape, FILE_TYPES["F16"])
    _copy_tokenizer(writer, tokenizer)
    shapes = text_tensor_shapes(shape, vocab)
    for name, dims in shapes.items():
        dtype = np.dtype(np.float32 if len(dims) == 1 else np.float16)
        writer.add_tensor_info(name, dims, dtype, int(np.prod(dims)) * dtype.itemsize)
    _write_header(writer)
    rng = np.random.default_rng(0)
    for name, dims in shapes.items():
        writer.write_tensor_data(random_tensor(name, dims, rng))
    writer.close()


def random_tensor(name: str, dims: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Norm weights near 1 (F32), biases and matrices N(0, 0.02) (F32 / F16)."""
    values = rng.standard_normal(dims, dtype=np.float32) * np.float32(WEIGHT_STD)
    if len(dims) == 1:
        return values + np.float32(1.0) if _is_norm(name) else values
    return values.astype(np.float16)


def _is_norm(name: str) -> bool:
    return "norm" in name or ".ln" in name or "post_ln" in name


def _add_text_metadata(writer: gguf.GGUFWriter, shape: TextShape, file_type: int) -> None:
    arch = "qwen2vl"
    writer.add_string("general.type", "model")
    writer.add_string("general.name", "Qwen2-VL random weights (benchmark)")
    writer.add_uint32(f"{arch}.block_count", shape.layers)
    writer.add_uint32(f"{arch}.context_length", 32768)
    writer.add_uint32(f"{arch}.embedding_length", shape.hidden)
    writer.add_uint32(f"{arch}.feed_forward_length", shape.intermediate)
    writer.add_uint32(f"{arch}.attention.head_count", shape.heads)
    writer.add_uint32(f"{arch}.attention.head_count_kv", shape.kv_heads)
    writer.add_array(f"{arch}.rope.dimension_sections", [*shape.mrope_sections, 0])
    writer.add_float32(f"{arch}.rope.freq_base", 1_000_000.0)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_uint32("general.file_type", file_type)
    writer.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)


def _copy_tokenizer(writer: gguf.GGUFWriter, source: GGUFFile) -> None:
    writer.add_tokenizer_model(source.require("tokenizer.ggml.model"))
    writer.add_tokenizer_pre(source.require("tokenizer.ggml.pre"))
    writer.add_token_list(source.require("tokenizer.ggml.tokens"))
    writer.add_token_types([int(t) for t in source.require("tokenizer.ggml.token_type")])
    writer.add_token_merges(source.require("tokenizer.ggml.merges"))
    writer.add_eos_token_id(int(source.require("tokenizer.ggml.eos_token_id")))
    writer.add_pad_token_id(int(source.require("tokenizer.ggml.padding_token_id")))
    writer.add_bos_token_id(int(source.require("tokenizer.ggml.bos_token_id")))
    writer.add_add_bos_token(bool(source.get("tokenizer.ggml.add_bos_token", False)))
    writer.add_add_eos_token(bool(source.get("tokenizer.ggml.add_eos_token", False)))
    writer.add_chat_template(source.require("tokenizer.chat_template"))


def _write_header(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()


# -- quantization -----------------------------------------------------------------------------------


def tensor_type(name: str, cols: int, quant: str, n_layers: int) -> str:
    """The GGUF type llama-quantize gives a 2-D weight of a tied-embedding Qwen2 model for `quant`."""
    if quant == "F16":
        return "F16"
    if name == "token_embd.weight":  # tied: it is also the output matrix, kept at 6 bits
        if quant == "Q8_0":
            return "Q8_0"
        return "Q6_K" if cols % K_BLOCK == 0 else "Q8_0"
    if quant in ("Q8_0", "Q4_0"):
        return quant
    if quant != "Q4_K_M":
        raise ValueError(f"no recipe for {quant!r} (known: {', '.join(QUANT_TYPES)})")
    chosen = "Q4_K"
    if name.endswith(("attn_v.weight", "ffn_down.weight")) and _more_bits(_layer_index(name), n_layers):
        chosen = "Q6_K"
    if cols % K_BLOCK:
        chosen = {"Q4_K": "Q5_0", "Q6_K": "Q8_0"}[chosen]
    return chosen


def _more_bits(layer: int, n_layers: int) -> bool:
    """llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


def _layer_index(name: str) -> int:
    return int(name.split(".")[1])


def quantize_text(source: Path, destination: Path, quant: str, n_layers: int, n_threads: int) -> None:
    """Re-encodes the F16 file's matrices with `quant`'s recipe; 1-D tensors stay F32."""
    f16 = GGUFFile(source)
    writer = gguf.GGUFWriter(destination, "qwen2vl")
    for key, value in _copied_metadata(f16):
        writer.add_key_value(key, *value)
    writer.add_uint32("general.file_type", FILE_TYPES[quant])
    plan = {}
    for name, info in f16.tensors.items():
        numpy_shape = tuple(reversed(info.shape))
        target = tensor_type(name, numpy_shape[-1], quant, n_layers) if len(numpy_shape) == 2 else "F32"
        plan[name] = (numpy_shape, target)
        if target in ("F32", "F16"):
            dtype = np.dtype(np.float32 if target == "F32" else np.float16)
            writer.add_tensor_info(name, numpy_shape, dtype, int(np.prod(numpy_shape)) * dtype.itemsize)
        else:
            rows, cols = numpy_shape
            nbytes = rows * ops.row_bytes(target, cols)
            writer.add_tensor_info(name, (rows, nbytes // rows), np.dtype(np.uint8), nbytes,
                                   raw_dtype=gguf.GGMLQuantizationType[target])
    _write_header(writer)
    n_threads = max(1, n_threads)
    with ThreadPoolExecutor(n_threads) as pool:
        for name, (numpy_shape, target) in plan.items():
            values = _tensor_values(f16, name, numpy_shape)
            if target in ("F32", "F16"):
                writer.write_tensor_data(values.astype(np.float32 if target == "F32" else np.float16))
            else:
                writer.write_tensor_data(_quantize_parallel(values, target, pool, n_bands=4 * n_threads))
    writer.close()


def _copied_metadata(source: GGUFFile) -> Iterator[tuple[str, tuple]]:
    """(key, (value, GGUFValueType[, sub type])) for the F16 file's keys, file type aside."""
    types = gguf.GGUFValueType
    text_arrays = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"}
    for key, value in source.metadata.items():
        if key in ("general.architecture", "general.file_type"):
            continue  # the writer adds the architecture; the file type is the new one
        if key in text_arrays:
            yield key, (list(value), types.ARRAY, types.STRING)
        elif key == "tokenizer.ggml.token_type":
            yield key, ([int(v) for v in value], types.ARRAY, types.INT32)
        elif key.endswith("dimension_sections"):
            yield key, ([int(v) for v in value], types.ARRAY, types.INT32)
        elif isinstance(value, bool):
            yield key, (value, types.BOOL)
        elif isinstance(value, int):
            yield key, (value, types.UINT32)
        elif isinstance(value, float):
            yield key, (value, types.FLOAT32)
        else:
            yield key, (str(value), types.STRING)


def _tensor_values(f: GGUFFile, name: str, numpy_shape: tuple[int, ...]) -> np.ndarray:
    info = f.tensor(name)
    dtype = np.float32 if info.type_name == "F32" else np.float16
    return f.tensor_bytes(name).view(dtype).reshape(numpy_shape).astype(np.float32)


def _quantize_parallel(values: np.ndarray, target: str, pool: ThreadPoolExecutor, n_bands: int) -> np.ndarray:
    """Our encoder on row bands in parallel (it releases the GIL); the bands' bytes concatenate."""
    bands = np.array_split(values, n_bands)
    encoded = pool.map(lambda band: ops.quantize(band, target).data, [b for b in bands if len(b)])
    return np.concatenate(list(encoded))


# -- the vision projector ---------------------------------------------------------------------------


def mmproj_tensor_shapes(shape: VisionShape, out_width: int) -> dict[str, tuple[int, ...]]:
    """name -> numpy shape, with llama.cpp's converter names (the Conv3D kernel split in two slices)."""
    width, merged = shape.width, shape.width * shape.merge**2
    shapes: dict[str, tuple[int, ...]] = {
        "v.patch_embd.weight": (width, 3, shape.patch, shape.patch),
        "v.patch_embd.weight.1": (width, 3, shape.patch, shape.patch),
    }
    for i in range(shape.layers):
        block = f"v.blk.{i}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            shapes[f"{block}.{name}.weight"] = (width, width)
            shapes[f"{block}.{name}.bias"] = (width,)
        shapes[f"{block}.ffn_up.weight"] = (shape.mlp, width)
        shapes[f"{block}.ffn_up.bias"] = (shape.mlp,)
        shapes[f"{block}.ffn_down.weight"] = (width, shape.mlp)
        shapes[f"{block}.ffn_down.bias"] = (width,)
        for norm in ("ln1", "ln2"):
            shapes[f"{block}.{norm}.weight"] = (width,)
            shapes[f"{block}.{norm}.bias"] = (width,)
    shapes["v.post_ln.weight"] = (width,)
    shapes["v.post_ln.bias"] = (width,)
    shapes["mm.0.weight"] = (merged, merged)
    shapes["mm.0.bias"] = (merged,)
    shapes["mm.2.weight"] = (out_width, merged)
    shapes["mm.2.bias"] = (out_width,)
    return shapes


def write_mmproj_f16(path: Path, shape: VisionShape, out_width: int) -> None:
    writer = gguf.GGUFWriter(path, "clip")
    writer.add_string("general.type", "mmproj")
    writer.add_uint32("general.file_type", FILE_TYPES["F16"])
    writer.add_string("clip.projector_type", "qwen2vl_merger")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_uint32("clip.vision.image_size", 560)
    writer.add_uint32("clip.vision.patch_size", shape.patch)
    writer.add_uint32("clip.vision.embedding_length", shape.width)
    writer.add_uint32("clip.vision.feed_forward_length", out_width)  # the converter writes the merger's output here
    writer.add_uint32("clip.vision.block_count", shape.layers)
    writer.add_uint32("clip.vision.attention.head_count", shape.heads)
    writer.add_uint32("clip.vision.projection_dim", out_width)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    shapes = mmproj_tensor_shapes(shape, out_width)
    for name, dims in shapes.items():
        dtype = np.dtype(np.float32 if len(dims) == 1 else np.float16)
        writer.add_tensor_info(name, dims, dtype, int(np.prod(dims)) * dtype.itemsize)
    _write_header(writer)
    rng = np.random.default_rng(1)
    for name, dims in shapes.items():
        writer.write_tensor_data(random_tensor(name, dims, rng))
    writer.close()
