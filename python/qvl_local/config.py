"""Model configuration read from GGUF metadata, with tensor shapes trusted over metadata.

llama.cpp's converter writes a few keys that do not mean what their names say (the mmproj's
`clip.vision.feed_forward_length` is the merger's output width, not the ViT MLP width, and there is
no spatial-merge key), so every size that a tensor can tell is taken from the tensor.

The configs hold the sizes, the variant (variants.py) and the per-file choices; `text_spec` and
`vision_spec` turn them, once per load, into the structs the C++ core runs on.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields

from .errors import ModelFormatError
from .gguf_file import GGUFFile
from .variants import (
    EMBEDDED_VISION,
    TEXT_VARIANTS,
    UNSUPPORTED_EMBEDDED_VISION,
    VISION_VARIANTS,
    TextVariant,
    VisionVariant,
)

TEXT_ARCHITECTURES = tuple(TEXT_VARIANTS)
VISION_PROJECTORS = tuple(VISION_VARIANTS)
# Defaults for what a file may leave out: HF's window of 112 pixels (Qwen2.5-VL), the CLIP mean/std
# (as float32, the precision the converter stores them in), and Ollama's rule that an empty
# fullatt_block_indexes means full attention on every 8th layer.
DEFAULT_WINDOW_SIZE = 112
CLIP_MEAN = (0.48145467042922974, 0.45782750844955444, 0.40821072459220886)
CLIP_STD = (0.2686295509338379, 0.2613025903701782, 0.27577710151672363)
DEFAULT_FULL_ATTENTION_EVERY = 8


@dataclass(frozen=True)
class VisionTensorNames:
    """The names that differ between GGUF layouts (every `v.blk.N.*` name is the same in all)."""

    patch_embed: tuple[str, ...]  # one Conv3D slice per temporal patch
    merger_norm: str
    merger_fc1: str
    merger_fc2: str


def llama_cpp_vision_names(f: GGUFFile) -> VisionTensorNames:
    """llama.cpp's mmproj: `v.patch_embd.weight`, `v.patch_embd.weight.1`, `v.post_ln`, `mm.0`, `mm.2`."""
    slices = ["v.patch_embd.weight"] + _numbered(f, "v.patch_embd.weight.{}", first=1)
    return VisionTensorNames(tuple(slices), merger_norm="v.post_ln", merger_fc1="mm.0", merger_fc2="mm.2")


def ollama_vision_names(f: GGUFFile) -> VisionTensorNames:
    """Ollama's single file: `v.patch_embd_0.weight`, `v.patch_embd_1.weight`, `v.merger.ln_q`, `v.merger.mlp.{0,2}`."""
    return VisionTensorNames(tuple(_numbered(f, "v.patch_embd_{}.weight", first=0)), merger_norm="v.merger.ln_q",
                             merger_fc1="v.merger.mlp.0", merger_fc2="v.merger.mlp.2")


def _numbered(f: GGUFFile, pattern: str, first: int) -> list[str]:
    names = []
    while pattern.format(first + len(names)) in f.tensors:
        names.append(pattern.format(first + len(names)))
    return names


def holds_vision_encoder(source: str | os.PathLike[str] | GGUFFile) -> bool:
    """Whether a GGUF file carries its own vision encoder's blocks (`v.blk.*`: Ollama's single-file layout
    when the file is a text model). A path's tensor table is read alone, without building the metadata."""
    if isinstance(source, GGUFFile):
        names: Iterable[str] = source.tensors
    else:
        from . import _core

        names = (name for name, *_ in _core.GgufFile(str(source)).tensors())
    return any(name.startswith("v.blk.") for name in names)


def refuse_unsupported_single_file(what: str, architecture: str) -> None:
    """ModelFormatError for `what` (a file or a model name) when it is an Ollama single file (text and
    vision in one) of an architecture whose single-file layout we cannot load."""
    instead = UNSUPPORTED_EMBEDDED_VISION.get(architecture)
    if instead is not None:
        raise ModelFormatError(
            f"{what} is Ollama's single-file {architecture} model (text and vision tensors in one file), a layout "
            f"qvl_local cannot load yet; use {instead}"
        )


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    context_length: int
    rope_theta: float
    rms_norm_eps: float
    mrope_sections: tuple[int, int, int]  # rotary frequency pairs for (temporal, height, width)
    tied_embeddings: bool
    variant: TextVariant
    deepstack_layers: int = 0  # vision features added again after each of the first k layers


@dataclass(frozen=True)
class VisionConfig:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    patch_size: int
    temporal_patch_size: int
    spatial_merge_size: int
    merger_hidden_size: int
    out_hidden_size: int
    layer_norm_eps: float
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    projector_type: str
    variant: VisionVariant
    tensor_names: VisionTensorNames
    window_size: int = 0  # pixels; 0 = no window attention
    full_attention_layers: tuple[int, ...] = ()  # with windows: the layers that attend over whole frames
    deepstack_layers: tuple[int, ...] = ()  # blocks whose output feeds a deepstack merger


@dataclass(frozen=True)
class SpecialTokens:
    endoftext: int
    im_start: int
    im_end: int
    vision_start: int
    vision_end: int
    image_pad: int
    video_pad: int
    eos: int


@dataclass(frozen=True)
class Qwen2VLConfig:
    architecture: str
    text: TextConfig
    vision: VisionConfig | None
    tokens: SpecialTokens

    @classmethod
    def from_gguf(cls, text_file: GGUFFile, mmproj_file: GGUFFile | None = None) -> "Qwen2VLConfig":
        """The text model's config, and the vision encoder's from `mmproj_file`: an mmproj, or the text
        file itself when it holds its vision encoder (Ollama's single file)."""
        architecture = text_file.architecture
        if architecture == "clip":
            raise ModelFormatError(f"{text_file.path} is a vision projector (mmproj) file; load the text model and pass this as mmproj")
        if architecture not in TEXT_ARCHITECTURES:
            raise ModelFormatError(
                f"{text_file.path}: unknown architecture '{architecture}' (supported: {', '.join(TEXT_ARCHITECTURES)})"
            )
        if holds_vision_encoder(text_file):
            refuse_unsupported_single_file(str(text_file.path), architecture)
        text = _text_config(text_file, architecture)
        vision = vision_config(mmproj_file) if mmproj_file is not None else None
        if vision is not None and vision.out_hidden_size != text.hidden_size:
            raise ModelFormatError(
                f"{mmproj_file.path}: the projector outputs {vision.out_hidden_size}-wide embeddings but the text model "
                f"{text_file.path} has hidden size {text.hidden_size}; this mmproj belongs to another model"
            )
        if vision is not None and len(vision.deepstack_layers) != text.deepstack_layers:
            raise ModelFormatError(
                f"{mmproj_file.path}: the projector has {len(vision.deepstack_layers)} deepstack taps but the text model "
                f"{text_file.path} takes {text.deepstack_layers}; this mmproj belongs to another model"
            )
        return cls(architecture, text, vision, _special_tokens(text_file))


def _text_config(f: GGUFFile, arch: str) -> TextConfig:
    embedding = f.tensor("token_embd.weight").shape  # (hidden, vocab)
    hidden, vocab = embedding[0], embedding[1]
    num_layers = _count_blocks(f, r"blk\.(\d+)\.attn_norm\.weight")
    if num_layers == 0:
        raise ModelFormatError(f"{f.path}: no decoder blocks (blk.N.*) found")
    num_heads = int(f.require(f"{arch}.attention.head_count"))
    if num_heads <= 0 or (f"{arch}.attention.key_length" not in f.metadata and hidden % num_heads):
        raise ModelFormatError(f"{f.path}: hidden size {hidden} is not divisible by {num_heads} heads")
    # Qwen3's heads need not tile the hidden size: the file then says how wide they are.
    head_dim = int(f.get(f"{arch}.attention.key_length", hidden // num_heads))
    kv_width = f.tensor("blk.0.attn_k.weight").shape[1]
    if kv_width % head_dim or num_heads % (kv_width // head_dim):
        raise ModelFormatError(f"{f.path}: key projection width {kv_width} does not fit {num_heads} heads of {head_dim}")
    # llama.cpp stores 4 sections (the last 0), Ollama's qwen25vl files 3 under another name.
    sections = f.get(f"{arch}.rope.dimension_sections")
    if sections is None:
        sections = f.require(f"{arch}.rope.mrope_section")
    sections = [int(s) for s in sections][:3]
    if len(sections) != 3 or sum(sections) != head_dim // 2:
        raise ModelFormatError(f"{f.path}: M-RoPE sections {sections} must be three numbers adding up to head_dim/2 = {head_dim // 2}")
    return TextConfig(
        variant=TEXT_VARIANTS[arch],
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=f.tensor("blk.0.ffn_up.weight").shape[1],
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=kv_width // head_dim,
        head_dim=head_dim,
        context_length=int(f.get(f"{arch}.context_length", 32768)),
        rope_theta=float(f.get(f"{arch}.rope.freq_base", 1_000_000.0)),
        rms_norm_eps=float(f.get(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)),
        mrope_sections=(sections[0], sections[1], sections[2]),
        tied_embeddings="output.weight" not in f.tensors,
        deepstack_layers=int(f.get(f"{arch}.n_deepstack_layers", 0)),
    )


def vision_config(f: GGUFFile) -> VisionConfig:
    """The vision encoder of a llama.cpp mmproj, or of a single file that embeds it."""
    if f.architecture in EMBEDDED_VISION:
        return _embedded_vision_config(f, f.architecture)
    return _vision_config(f)


def _vision_config(f: GGUFFile) -> VisionConfig:
    """llama.cpp's mmproj (general.architecture = clip, keys clip.vision.*)."""
    if f.architecture != "clip":
        raise ModelFormatError(f"{f.path}: not a vision projector (general.architecture is '{f.architecture}', expected 'clip')")
    projector = str(f.get("clip.projector_type", ""))
    if projector not in VISION_PROJECTORS:
        raise ModelFormatError(f"{f.path}: unsupported projector type '{projector}' (supported: {', '.join(VISION_PROJECTORS)})")
    variant = VISION_VARIANTS[projector]
    num_layers = _count_blocks(f, r"v\.blk\.(\d+)\.ln1\.weight")
    full_attention: tuple[int, ...] = ()
    if variant.windowed:  # layer i attends fully when (i + 1) % n_wa_pattern == 0
        full_attention = _every_nth_layer(f, num_layers, int(f.require("clip.vision.n_wa_pattern")))
    return _vision_config_from_tensors(
        f, llama_cpp_vision_names(f), projector, num_layers,
        num_heads=int(f.require("clip.vision.attention.head_count")),
        layer_norm_eps=float(f.get("clip.vision.attention.layer_norm_epsilon", 1e-6)),
        image_mean=_triple(f, "clip.vision.image_mean"),
        image_std=_triple(f, "clip.vision.image_std"),
        window_size=int(f.get("clip.vision.window_size", DEFAULT_WINDOW_SIZE)) if variant.windowed else 0,
        full_attention_layers=full_attention,
        deepstack_layers=tuple(i for i, tap in enumerate(f.get("clip.vision.is_deepstack_layers", ())) if tap),
    )


def _embedded_vision_config(f: GGUFFile, arch: str) -> VisionConfig:
    """Ollama's single file: keys `<arch>.vision.*`, its own tensor names, no mean/std (CLIP's apply)."""
    key = f"{arch}.vision."
    projector = EMBEDDED_VISION[arch]
    num_layers = _count_blocks(f, r"v\.blk\.(\d+)\.ln1\.weight")
    full_attention = tuple(int(i) for i in f.get(key + "fullatt_block_indexes", ()))
    if not full_attention:
        full_attention = _every_nth_layer(f, num_layers, DEFAULT_FULL_ATTENTION_EVERY)
    if any(not 0 <= i < num_layers for i in full_attention):
        raise ModelFormatError(f"{f.path}: {key}fullatt_block_indexes {list(full_attention)} name layers outside 0..{num_layers - 1}")
    return _vision_config_from_tensors(
        f, ollama_vision_names(f), projector, num_layers,
        num_heads=int(f.require(key + "attention.head_count")),
        layer_norm_eps=float(f.get(key + "attention.layer_norm_epsilon", 1e-6)),
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        window_size=int(f.get(key + "window_size", DEFAULT_WINDOW_SIZE)),
        full_attention_layers=full_attention,
    )


def _vision_config_from_tensors(f: GGUFFile, names: VisionTensorNames, projector: str, num_layers: int, *,
                                num_heads: int, **choices) -> VisionConfig:
    """The sizes every layout tells through its tensors' shapes, with the metadata-only values in `choices`."""
    if num_layers == 0:
        raise ModelFormatError(f"{f.path}: no vision blocks (v.blk.N.*) found")
    patch = f.tensor(names.patch_embed[0]).shape  # (patch, patch, 3, hidden)
    hidden = patch[3]
    if num_heads <= 0 or hidden % num_heads:
        raise ModelFormatError(f"{f.path}: vision width {hidden} is not divisible by {num_heads} heads")
    merger_in, merger_hidden = f.tensor(names.merger_fc1 + ".weight").shape
    merge = round((merger_in / hidden) ** 0.5)
    if merge * merge * hidden != merger_in:
        raise ModelFormatError(f"{f.path}: merger input {merger_in} is not a square number of {hidden}-wide patches")
    return VisionConfig(
        variant=VISION_VARIANTS[projector],
        tensor_names=names,
        hidden_size=hidden,
        intermediate_size=f.tensor("v.blk.0.ffn_up.weight").shape[1],
        num_layers=num_layers,
        num_heads=num_heads,
        patch_size=patch[0],
        temporal_patch_size=len(names.patch_embed),
        spatial_merge_size=merge,
        merger_hidden_size=merger_hidden,
        out_hidden_size=f.tensor(names.merger_fc2 + ".weight").shape[1],
        projector_type=projector,
        **choices,
    )


def _every_nth_layer(f: GGUFFile, num_layers: int, n: int) -> tuple[int, ...]:
    if n <= 0:
        raise ModelFormatError(f"{f.path}: the full-attention period must be positive, got {n}")
    return tuple(i for i in range(num_layers) if (i + 1) % n == 0)


def _special_tokens(f: GGUFFile) -> SpecialTokens:
    tokens = f.require("tokenizer.ggml.tokens")
    index = {text: i for i, text in enumerate(tokens) if text.startswith("<|")}

    def lookup(text: str) -> int:
        if text not in index:
            raise ModelFormatError(f"{f.path}: the vocabulary has no '{text}' token; not a Qwen2-VL tokenizer")
        return index[text]

    return SpecialTokens(
        endoftext=lookup("<|endoftext|>"),
        im_start=lookup("<|im_start|>"),
        im_end=lookup("<|im_end|>"),
        vision_start=lookup("<|vision_start|>"),
        vision_end=lookup("<|vision_end|>"),
        image_pad=lookup("<|image_pad|>"),
        video_pad=lookup("<|video_pad|>"),
        eos=int(f.get("tokenizer.ggml.eos_token_id", lookup("<|im_end|>"))),
    )


def _count_blocks(f: GGUFFile, pattern: str) -> int:
    regex = re.compile(pattern)
    indices = {int(m.group(1)) for name in f.tensors if (m := regex.fullmatch(name))}
    if indices and indices != set(range(len(indices))):
        raise ModelFormatError(f"{f.path}: block numbers are not contiguous: {sorted(indices)}")
    return len(indices)


def _triple(f: GGUFFile, key: str) -> tuple[float, float, float]:
    values = [float(v) for v in f.require(key)]
    if len(values) != 3:
        raise ModelFormatError(f"{f.path}: {key} must hold 3 values, got {len(values)}")
    return (values[0], values[1], values[2])


# --- the C++ core's specs ------------------------------------------------------------------------

def text_spec(config: TextConfig):
    """The decoder's `_core.TextSpec`: the sizes, and the variant as the core's enums."""
    from . import _core

    spec = _core.TextSpec()
    _copy_common_fields(config, spec)
    spec.mrope_layout = getattr(_core.MRopeLayout, config.variant.mrope_layout)
    spec.block = getattr(_core.TextBlockKind, config.variant.block)
    return spec


def vision_spec(config: VisionConfig):
    """The vision encoder's `_core.VisionSpec`: sizes, variant, per-file choices and tensor names."""
    from . import _core

    variant, names = config.variant, config.tensor_names
    spec = _core.VisionSpec()
    _copy_common_fields(config, spec)
    spec.block_norm = getattr(_core.NormKind, variant.block_norm)
    spec.mlp = getattr(_core.VisionMlpKind, variant.mlp)
    spec.fused_qkv = variant.fused_qkv
    spec.patch_embed_names = list(names.patch_embed)
    spec.patch_bias_name = "v.patch_embd.bias" if variant.patch_bias else ""
    spec.position_embed_name = "v.position_embd.weight" if variant.learned_positions else ""
    spec.window_size = config.window_size if variant.windowed else 0
    spec.merger = _merger_spec(variant.merger_norm, False, names.merger_norm, names.merger_fc1, names.merger_fc2)
    spec.deepstack_mergers = [
        _merger_spec("layer_norm", True, f"v.deepstack.{layer}.norm", f"v.deepstack.{layer}.fc1",
                     f"v.deepstack.{layer}.fc2")
        for layer in config.deepstack_layers
    ]
    return spec


def _merger_spec(norm: str, after_merge: bool, norm_name: str, fc1_name: str, fc2_name: str):
    from . import _core

    spec = _core.MergerSpec()
    spec.norm = getattr(_core.NormKind, norm)
    spec.norm_after_merge = after_merge
    spec.norm_name, spec.fc1_name, spec.fc2_name = norm_name, fc1_name, fc2_name
    return spec


def _copy_common_fields(config, spec) -> None:
    """Every config field the spec also has: sizes and per-file choices carry the same names on both sides."""
    for item in fields(config):
        if hasattr(spec, item.name):
            setattr(spec, item.name, getattr(config, item.name))
