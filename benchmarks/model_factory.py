"""Qwen2-VL-shaped GGUF files with random weights, for benchmarks that need no download.

The text model is written once in F16 (norms and biases in F32, as llama.cpp's converter does) and
every quantized file is made from it by `qvl_local.quantize.quantize_gguf` (llama-quantize's
per-tensor recipes), or by llama.cpp's own `llama-quantize` when its path is given (files named
`*-llama-quantize.gguf`, so the two kinds never mix); the vision projector (mmproj) stays in F16. Weights are N(0, 0.02), norm weights about 1, so activations keep realistic scales.
The tokenizer (vocabulary, merges, special tokens, chat template) is the real Qwen2 one, copied
from a small fixture model, so prompts tokenize and chat templates render as with the real model.

Files live in `.bench-cache/` at the repository root and are made only when missing.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from qvl_local.gguf_file import GGUFFile
from qvl_local.quantize import quantize_gguf

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".bench-cache"
TOKENIZER_FIXTURE = Path("gguf") / "qwen2vl-tiny-Q8_0.gguf"
QUANT_TYPES = ("F16", "Q8_0", "Q4_K_M", "Q4_0")
WEIGHT_STD = 0.02
F16_FILE_TYPE = 1  # general.file_type (llama_ftype) of a mostly-F16 file


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
# Small enough that every file is written and run in seconds; widths under 256 take llama-quantize's
# fallback types where a recipe asks for K-quants.
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
                  cache_dir: Path = CACHE_DIR, n_threads: int = 1, log: Callable[[str], None] = print,
                  llama_quantize: Path | None = None) -> BenchFiles:
    """The cached files for `shape`, writing the missing ones (F16 first: the others come from it,
    through `llama_quantize` when given, else through our quantizer)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    f16_path = cache_dir / f"{shape.name}-F16.gguf"
    write_once(f16_path, lambda p: write_text_f16(p, shape.text, tokenizer_gguf), log)
    text = {}
    for quant in quant_types:
        if quant == "F16":
            text[quant] = f16_path
            continue
        if llama_quantize is not None:
            path = cache_dir / f"{shape.name}-{quant}-llama-quantize.gguf"
            write_once(path, lambda p, q=quant: run_llama_quantize(llama_quantize, f16_path, p, q, n_threads), log)
        else:
            path = cache_dir / f"{shape.name}-{quant}.gguf"
            write_once(path, lambda p, q=quant: quantize_gguf(f16_path, p, q, overwrite=True, n_threads=n_threads), log)
        text[quant] = path
    mmproj = cache_dir / f"mmproj-{shape.name}-F16.gguf"
    write_once(mmproj, lambda p: write_mmproj_f16(p, shape.vision, out_width=shape.text.hidden), log)
    return BenchFiles(text, mmproj)


def run_llama_quantize(binary: Path, source: Path, target: Path, quant: str, n_threads: int) -> None:
    """llama.cpp's quantizer (its recipes, its encoders); its log is shown only when it fails."""
    done = subprocess.run([str(binary), str(source), str(target), quant, str(n_threads)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{binary} {quant} failed with status {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def write_once(path: Path, write: Callable[[Path], None], log: Callable[[str], None]) -> None:
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


def write_text_f16(path: Path, shape: TextShape, tokenizer_gguf: Path,
                   tensor: Callable[[str, tuple[int, ...], np.random.Generator], np.ndarray] | None = None) -> None:
    """`tensor(name, dims, rng)` gives each tensor's values (random_tensor when None)."""
    tensor = tensor or random_tensor
    tokenizer = GGUFFile(tokenizer_gguf)
    vocab = len(tokenizer.require("tokenizer.ggml.tokens"))
    writer = gguf.GGUFWriter(path, "qwen2vl")
    _add_text_metadata(writer, shape, F16_FILE_TYPE)
    _copy_tokenizer(writer, tokenizer)
    shapes = text_tensor_shapes(shape, vocab)
    for name, dims in shapes.items():
        dtype = np.dtype(np.float32 if len(dims) == 1 else np.float16)
        writer.add_tensor_info(name, dims, dtype, int(np.prod(dims)) * dtype.itemsize)
    _write_header(writer)
    rng = np.random.default_rng(0)
    for name, dims in shapes.items():
        writer.write_tensor_data(tensor(name, dims, rng))
    writer.close()


def random_tensor(name: str, dims: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Norm weights near 1 (F32), biases and matrices N(0, 0.02) (F32 / F16)."""
    values = rng.standard_normal(dims, dtype=np.float32) * np.float32(WEIGHT_STD)
    if len(dims) == 1:
        return values + np.float32(1.0) if _is_norm(name) else values
    return values.astype(np.float16)


def fixture_like_tensor(name: str, dims: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """The fixtures' tiny-model initialisation (fixtures README §2): embedding N(0, 0.15), matrices
    N(0, 0.08), biases N(0, 0.05), norm weights 1 + 0.1 N. Logits then spread as a trained model's do
    (std of a few units), where random_tensor's N(0, 0.02) leaves them near zero: what error studies need."""
    values = rng.standard_normal(dims, dtype=np.float32)
    if len(dims) == 1:
        return values * np.float32(0.1) + np.float32(1.0) if _is_norm(name) else values * np.float32(0.05)
    std = 0.15 if name == "token_embd.weight" else 0.08
    return (values * np.float32(std)).astype(np.float16)


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
    writer.add_uint32("general.file_type", F16_FILE_TYPE)
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
