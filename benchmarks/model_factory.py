"""Qwen-VL-shaped GGUF files with random weights, for benchmarks that need no download.

One writer for every model family: what differs between Qwen2-VL, Qwen2.5-VL and Qwen3-VL is data
(`TextFamily`, `VisionFamily`: the keys and tensors llama.cpp's converter writes for each, as the
fixtures' files show them), and the sizes are `BenchShape`s, one per `--model` name (`MODELS`, with
a tiny `QUICK_MODELS` twin each for smoke tests).
The text model is written once in F16 (norms and biases in F32, as llama.cpp's converter does) and
every quantized file is made from it by `qvl_local.quantize.quantize_gguf` (llama-quantize's
per-tensor recipes), or by llama.cpp's own `llama-quantize` when its path is given (files named
`*-llama-quantize.gguf`, so the two kinds never mix); the vision projector (mmproj) stays in F16.
Weights are N(0, 0.02), norm weights about 1, so activations keep realistic scales.
The tokenizer (vocabulary, merges, special tokens, chat template) is the family's real one, copied
from its small fixture model, so prompts tokenize and chat templates render as with the real model.

Files live in `.bench-cache/` at the repository root and are made only when missing.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np

from qvl_local.gguf_file import GGUFFile
from qvl_local.quantize import quantize_gguf

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".bench-cache"
QUANT_TYPES = ("F16", "Q8_0", "Q4_K_M", "Q4_0", "Q5_K_M")
DEFAULT_QUANT_TYPES = ("F16", "Q8_0", "Q4_K_M", "Q4_0")  # what a run measures unless told
WEIGHT_STD = 0.02
F16_FILE_TYPE = 1  # general.file_type (llama_ftype) of a mostly-F16 file
F32_MATRICES = frozenset({"v.position_embd.weight"})  # 2-D tensors the converter keeps in F32
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TextFamily:
    """What the converter writes for a family's text model, beyond the sizes."""
    arch: str  # general.architecture
    label: str  # for general.name
    context_length: int
    rope_theta: float
    # Qwen3: per-head RMSNorm of q and k (attn_q_norm / attn_k_norm) instead of q/k/v biases; its
    # config names the head width, which the converter then writes (attention.key_length / value_length).
    qk_norm: bool = False


# Qwen2.5-VL's text model is Qwen2-VL's: the converter writes the same architecture for both.
QWEN2_TEXT = TextFamily("qwen2vl", "Qwen2-VL", context_length=32768, rope_theta=1_000_000.0)
QWEN25_TEXT = TextFamily("qwen2vl", "Qwen2.5-VL", context_length=128000, rope_theta=1_000_000.0)
QWEN3_TEXT = TextFamily("qwen3vl", "Qwen3-VL", context_length=262144, rope_theta=5_000_000.0, qk_norm=True)


@dataclass(frozen=True)
class TextShape:
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    mrope_sections: tuple[int, int, int]
    family: TextFamily = QWEN2_TEXT
    deepstack_layers: int = 0  # Qwen3-VL: text layers after which the vision taps are added

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class VisionFamily:
    """What the converter writes for a family's projector (mmproj), beyond the sizes."""
    projector: str  # clip.projector_type
    rms_norm: bool  # ln1 / ln2 / v.post_ln are RMSNorm (a weight) rather than LayerNorm (weight and bias)
    gated_mlp: bool  # SwiGLU: ffn_gate, ffn_up, ffn_down (each with a bias), rather than ffn_up, ffn_down
    fused_qkv: bool  # one attn_qkv rather than attn_q / attn_k / attn_v
    patch_bias: bool  # v.patch_embd.bias
    position_grid: int  # side of the learned position grid v.position_embd (0: none)
    image_size: int  # clip.vision.image_size
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    activation_flag: str | None  # a boolean key the converter sets true
    # clip.vision.feed_forward_length: the ViT MLP width, or (Qwen2-VL) the merger's output width
    feed_forward_is_mlp: bool
    writes_merge_size: bool  # clip.vision.spatial_merge_size


QWEN2_VISION = VisionFamily("qwen2vl_merger", rms_norm=False, gated_mlp=False, fused_qkv=False, patch_bias=False,
                            position_grid=0, image_size=560, image_mean=CLIP_MEAN, image_std=CLIP_STD,
                            activation_flag=None, feed_forward_is_mlp=False, writes_merge_size=False)
QWEN25_VISION = VisionFamily("qwen2.5vl_merger", rms_norm=True, gated_mlp=True, fused_qkv=False, patch_bias=False,
                             position_grid=0, image_size=560, image_mean=CLIP_MEAN, image_std=CLIP_STD,
                             activation_flag="clip.use_silu", feed_forward_is_mlp=True, writes_merge_size=False)
QWEN3_VISION = VisionFamily("qwen3vl_merger", rms_norm=False, gated_mlp=False, fused_qkv=True, patch_bias=True,
                            position_grid=48, image_size=768, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5),
                            activation_flag="clip.use_gelu", feed_forward_is_mlp=True, writes_merge_size=True)


@dataclass(frozen=True)
class VisionShape:
    width: int
    layers: int
    heads: int
    mlp: int
    patch: int = 14
    merge: int = 2
    family: VisionFamily = QWEN2_VISION
    full_attention_every: int = 0  # windowed attention except on every n-th block (clip.vision.n_wa_pattern)
    deepstack: tuple[int, ...] = ()  # blocks whose output feeds a deepstack merger (v.deepstack.N)


@dataclass(frozen=True)
class BenchShape:
    name: str
    text: TextShape
    vision: VisionShape
    tokenizer_fixture: str = "gguf/qwen2vl-tiny-Q8_0.gguf"  # the family's tiny model, under the fixtures folder

    def __post_init__(self):
        if self.text.deepstack_layers != len(self.vision.deepstack):
            raise ValueError(f"{self.name}: the text model takes {self.text.deepstack_layers} deepstack inputs, "
                             f"the projector makes {len(self.vision.deepstack)}")


QWEN25_TOKENIZER = "gguf/qwen25vl/qwen25vl-tiny-Q8_0.gguf"
QWEN3_TOKENIZER = "gguf/qwen3vl/qwen3vl-tiny-Q8_0.gguf"
# The real models' sizes (their config.json), weights random.
MODELS = {
    "qwen2vl-2b": BenchShape(
        "qwen2vl-2b-shape",
        TextShape(hidden=1536, layers=28, intermediate=8960, heads=12, kv_heads=2, mrope_sections=(16, 24, 24)),
        VisionShape(width=1280, layers=32, heads=16, mlp=5120),
    ),
    "qwen25vl-3b": BenchShape(
        "qwen25vl-3b-shape",
        TextShape(hidden=2048, layers=36, intermediate=11008, heads=16, kv_heads=2, mrope_sections=(16, 24, 24),
                  family=QWEN25_TEXT),
        VisionShape(width=1280, layers=32, heads=16, mlp=3420, family=QWEN25_VISION, full_attention_every=8),
        QWEN25_TOKENIZER,
    ),
    "qwen3vl-2b": BenchShape(
        "qwen3vl-2b-shape",
        TextShape(hidden=2048, layers=28, intermediate=6144, heads=16, kv_heads=8, mrope_sections=(24, 20, 20),
                  family=QWEN3_TEXT, deepstack_layers=3),
        VisionShape(width=1024, layers=24, heads=16, mlp=4096, patch=16, family=QWEN3_VISION, deepstack=(5, 11, 17)),
        QWEN3_TOKENIZER,
    ),
}
DEFAULT_MODEL = "qwen2vl-2b"


def _tiny(shape: BenchShape, name: str, text: dict, vision: dict) -> BenchShape:
    """`shape`'s structure (families, patch size, tokenizer) at widths of 64."""
    return replace(shape, name=name, text=replace(shape.text, hidden=64, intermediate=128, heads=4, kv_heads=2, **text),
                   vision=replace(shape.vision, width=64, heads=4, **vision))


# Small enough that every file is written and run in seconds; widths under 256 take llama-quantize's
# fallback types where a recipe asks for K-quants. Qwen2.5-VL's MLP width is, like 3420, no multiple
# of 32; its windowed and Qwen3-VL's deepstack blocks are placed as in the fixtures' tiny models.
QUICK_MODELS = {
    "qwen2vl-2b": _tiny(MODELS["qwen2vl-2b"], "quick", text=dict(layers=2, mrope_sections=(2, 3, 3)),
                        vision=dict(layers=2, mlp=128)),
    "qwen25vl-3b": _tiny(MODELS["qwen25vl-3b"], "qwen25vl-quick", text=dict(layers=2, mrope_sections=(2, 3, 3)),
                         vision=dict(layers=4, mlp=108, full_attention_every=2)),
    "qwen3vl-2b": _tiny(MODELS["qwen3vl-2b"], "qwen3vl-quick", text=dict(layers=3, mrope_sections=(3, 3, 2), deepstack_layers=2),
                        vision=dict(layers=4, mlp=128, deepstack=(1, 2))),
}
QUICK = QUICK_MODELS["qwen2vl-2b"]


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
    _write_once(f16_path, lambda p: write_text_f16(p, shape.text, tokenizer_gguf), log)
    text = {}
    for quant in quant_types:
        if quant == "F16":
            text[quant] = f16_path
            continue
        if llama_quantize is not None:
            path = cache_dir / f"{shape.name}-{quant}-llama-quantize.gguf"
            _write_once(path, lambda p, q=quant: run_llama_quantize(llama_quantize, f16_path, p, q, n_threads), log)
        else:
            path = cache_dir / f"{shape.name}-{quant}.gguf"
            _write_once(path, lambda p, q=quant: quantize_gguf(f16_path, p, q, overwrite=True, n_threads=n_threads), log)
        text[quant] = path
    mmproj = cache_dir / f"mmproj-{shape.name}-F16.gguf"
    _write_once(mmproj, lambda p: write_mmproj_f16(p, shape.vision, out_width=shape.text.hidden), log)
    return BenchFiles(text, mmproj)


def run_llama_quantize(binary: Path, source: Path, target: Path, quant: str, n_threads: int) -> None:
    """llama.cpp's quantizer (its recipes, its encoders); its log is shown only when it fails."""
    done = subprocess.run([str(binary), str(source), str(target), quant, str(n_threads)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{binary} {quant} failed with status {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


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
    """name -> numpy shape (rows, cols); tied embeddings (no output.weight)."""
    kv_width = shape.kv_heads * shape.head_dim
    qk_norm = shape.family.qk_norm
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (vocab, shape.hidden)}
    for i in range(shape.layers):
        block = f"blk.{i}"
        shapes[f"{block}.attn_norm.weight"] = (shape.hidden,)
        for name, width in (("attn_q", shape.heads * shape.head_dim), ("attn_k", kv_width), ("attn_v", kv_width)):
            _add_linear(shapes, f"{block}.{name}", width, shape.hidden, bias=not qk_norm)
        if qk_norm:
            shapes[f"{block}.attn_q_norm.weight"] = (shape.head_dim,)
            shapes[f"{block}.attn_k_norm.weight"] = (shape.head_dim,)
        _add_linear(shapes, f"{block}.attn_output", shape.hidden, shape.heads * shape.head_dim, bias=False)
        shapes[f"{block}.ffn_norm.weight"] = (shape.hidden,)
        _add_linear(shapes, f"{block}.ffn_gate", shape.intermediate, shape.hidden, bias=False)
        _add_linear(shapes, f"{block}.ffn_up", shape.intermediate, shape.hidden, bias=False)
        _add_linear(shapes, f"{block}.ffn_down", shape.hidden, shape.intermediate, bias=False)
    shapes["output_norm.weight"] = (shape.hidden,)
    return shapes


def write_text_f16(path: Path, shape: TextShape, tokenizer_gguf: Path, random_weights: bool = True,
                   tensor: Callable[[str, tuple[int, ...], np.random.Generator], np.ndarray] | None = None) -> None:
    """The text model in F16; with `random_weights` False, zero weights in a sparse file (see `_write_tensors`);
    `tensor(name, dims, rng)` gives each tensor's values (random_tensor when None)."""
    tokenizer = GGUFFile(tokenizer_gguf)
    vocab = len(tokenizer.require("tokenizer.ggml.tokens"))
    writer = gguf.GGUFWriter(path, shape.family.arch)
    _add_text_metadata(writer, shape, F16_FILE_TYPE)
    _copy_tokenizer(writer, tokenizer)
    _write_tensors(writer, text_tensor_shapes(shape, vocab), seed=0, random_weights=random_weights,
                   tensor=tensor or random_tensor)


def _add_text_metadata(writer: gguf.GGUFWriter, shape: TextShape, file_type: int) -> None:
    family, arch = shape.family, shape.family.arch
    writer.add_string("general.type", "model")
    writer.add_string("general.name", f"{family.label} random weights (benchmark)")
    writer.add_uint32(f"{arch}.block_count", shape.layers)
    writer.add_uint32(f"{arch}.context_length", family.context_length)
    writer.add_uint32(f"{arch}.embedding_length", shape.hidden)
    writer.add_uint32(f"{arch}.feed_forward_length", shape.intermediate)
    writer.add_uint32(f"{arch}.attention.head_count", shape.heads)
    writer.add_uint32(f"{arch}.attention.head_count_kv", shape.kv_heads)
    writer.add_array(f"{arch}.rope.dimension_sections", [*shape.mrope_sections, 0])
    writer.add_float32(f"{arch}.rope.freq_base", family.rope_theta)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    if family.qk_norm:
        writer.add_uint32(f"{arch}.attention.key_length", shape.head_dim)
        writer.add_uint32(f"{arch}.attention.value_length", shape.head_dim)
    writer.add_uint32("general.file_type", file_type)
    if shape.deepstack_layers:
        writer.add_uint32(f"{arch}.n_deepstack_layers", shape.deepstack_layers)
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


# -- the vision projector ---------------------------------------------------------------------------


def mmproj_tensor_shapes(shape: VisionShape, out_width: int) -> dict[str, tuple[int, ...]]:
    """name -> numpy shape, with llama.cpp's converter names (the Conv3D kernel split in two slices)."""
    family = shape.family
    width, merged = shape.width, shape.width * shape.merge**2
    shapes: dict[str, tuple[int, ...]] = {
        "v.patch_embd.weight": (width, 3, shape.patch, shape.patch),
        "v.patch_embd.weight.1": (width, 3, shape.patch, shape.patch),
    }
    if family.patch_bias:
        shapes["v.patch_embd.bias"] = (width,)
    if family.position_grid:
        shapes["v.position_embd.weight"] = (family.position_grid**2, width)
    attention = {"attn_qkv": 3 * width} if family.fused_qkv else {"attn_q": width, "attn_k": width, "attn_v": width}
    mlp_in = ("ffn_gate", "ffn_up") if family.gated_mlp else ("ffn_up",)
    for i in range(shape.layers):
        block = f"v.blk.{i}"
        for name, rows in (*attention.items(), ("attn_out", width), *((n, shape.mlp) for n in mlp_in)):
            _add_linear(shapes, f"{block}.{name}", rows, width)
        _add_linear(shapes, f"{block}.ffn_down", width, shape.mlp)
        for norm in ("ln1", "ln2"):
            _add_norm(shapes, f"{block}.{norm}", width, bias=not family.rms_norm)
    for tap in shape.deepstack:  # LayerNorm over the merged patches, then an MLP like the final merger's
        _add_norm(shapes, f"v.deepstack.{tap}.norm", merged, bias=True)
        _add_linear(shapes, f"v.deepstack.{tap}.fc1", merged, merged)
        _add_linear(shapes, f"v.deepstack.{tap}.fc2", out_width, merged)
    _add_norm(shapes, "v.post_ln", width, bias=not family.rms_norm)
    _add_linear(shapes, "mm.0", merged, merged)
    _add_linear(shapes, "mm.2", out_width, merged)
    return shapes


def write_mmproj_f16(path: Path, shape: VisionShape, out_width: int, random_weights: bool = True) -> None:
    """The projector in F16; with `random_weights` False, zero weights in a sparse file (see `_write_tensors`)."""
    family = shape.family
    writer = gguf.GGUFWriter(path, "clip")
    writer.add_string("general.type", "mmproj")
    writer.add_uint32("general.file_type", F16_FILE_TYPE)
    writer.add_string("clip.projector_type", family.projector)
    writer.add_bool("clip.has_vision_encoder", True)
    if family.activation_flag:
        writer.add_bool(family.activation_flag, True)
    writer.add_uint32("clip.vision.image_size", family.image_size)
    writer.add_uint32("clip.vision.patch_size", shape.patch)
    writer.add_uint32("clip.vision.embedding_length", shape.width)
    writer.add_uint32("clip.vision.feed_forward_length", shape.mlp if family.feed_forward_is_mlp else out_width)
    writer.add_uint32("clip.vision.block_count", shape.layers)
    writer.add_uint32("clip.vision.attention.head_count", shape.heads)
    writer.add_uint32("clip.vision.projection_dim", out_width)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", list(family.image_mean))
    writer.add_array("clip.vision.image_std", list(family.image_std))
    if family.writes_merge_size:
        writer.add_uint32("clip.vision.spatial_merge_size", shape.merge)
    if shape.full_attention_every:
        writer.add_uint32("clip.vision.n_wa_pattern", shape.full_attention_every)
    if shape.deepstack:
        writer.add_array("clip.vision.is_deepstack_layers", [i in shape.deepstack for i in range(shape.layers)])
    writer.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    _write_tensors(writer, mmproj_tensor_shapes(shape, out_width), seed=1, random_weights=random_weights)


# -- tensors ----------------------------------------------------------------------------------------


def _add_linear(shapes: dict[str, tuple[int, ...]], prefix: str, rows: int, cols: int, bias: bool = True) -> None:
    shapes[f"{prefix}.weight"] = (rows, cols)
    if bias:
        shapes[f"{prefix}.bias"] = (rows,)


def _add_norm(shapes: dict[str, tuple[int, ...]], prefix: str, width: int, bias: bool) -> None:
    shapes[f"{prefix}.weight"] = (width,)
    if bias:
        shapes[f"{prefix}.bias"] = (width,)


def _dtype(name: str, dims: tuple[int, ...]) -> np.dtype:
    """As the converter stores them: vectors and a few matrices in F32, the other matrices in F16."""
    return np.dtype(np.float32 if len(dims) == 1 or name in F32_MATRICES else np.float16)


def random_tensor(name: str, dims: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Norm weights near 1, everything else N(0, 0.02), in the tensor's storage type."""
    values = rng.standard_normal(dims, dtype=np.float32) * np.float32(WEIGHT_STD)
    if len(dims) == 1 and _is_norm(name) and name.endswith(".weight"):
        values += np.float32(1.0)
    return values.astype(_dtype(name, dims))


def _is_norm(name: str) -> bool:
    return "norm" in name or ".ln" in name or "post_ln" in name


def fixture_like_tensor(name: str, dims: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """The fixtures' tiny-model initialisation (fixtures README §2): embedding N(0, 0.15), matrices
    N(0, 0.08), biases N(0, 0.05), norm weights 1 + 0.1 N. Logits then spread as a trained model's do
    (std of a few units), where random_tensor's N(0, 0.02) leaves them near zero: what error studies need."""
    values = rng.standard_normal(dims, dtype=np.float32)
    if len(dims) == 1:
        return values * np.float32(0.1) + np.float32(1.0) if _is_norm(name) else values * np.float32(0.05)
    std = 0.15 if name == "token_embd.weight" else 0.08
    return (values * np.float32(std)).astype(np.float16)


def _write_tensors(writer: gguf.GGUFWriter, shapes: dict[str, tuple[int, ...]], seed: int, random_weights: bool,
                   tensor: Callable[[str, tuple[int, ...], np.random.Generator], np.ndarray] | None = None) -> None:
    """The header, then random weights; or, with `random_weights` False, the file extended to its full
    length without writing: zero weights in a sparse file, a full-size model's structure for a load
    check in a moment and without its disk space."""
    for name, dims in shapes.items():
        dtype = _dtype(name, dims)
        writer.add_tensor_info(name, dims, dtype, int(np.prod(dims)) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    if random_weights:
        rng = np.random.default_rng(seed)
        for name, dims in shapes.items():
            writer.write_tensor_data((tensor or random_tensor)(name, dims, rng))
    else:
        [fout] = writer.fout
        data_start = writer.ggml_pad(fout.tell(), writer.data_alignment)
        sizes = (int(np.prod(dims)) * _dtype(name, dims).itemsize for name, dims in shapes.items())
        fout.truncate(data_start + sum(writer.ggml_pad(size, writer.data_alignment) for size in sizes))
    writer.close()
