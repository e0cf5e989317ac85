"""What differs between Qwen2-VL, Qwen2.5-VL and Qwen3-VL, declared as data.

The text variant follows the text file's architecture, the vision variant the projector type (never
the text architecture: llama.cpp writes `qwen2vl` for the text of both Qwen2-VL and Qwen2.5-VL). Sizes
and per-file choices (which layers attend fully, where the deepstack taps are) come from the file; what
is here is what the architecture implies. `config.py` reads the files and builds the C++ core's specs
from both; the string values below are the names of the `_core` enums (`_core.NormKind.rms_norm`, ...).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextVariant:
    name: str
    block: str  # "qwen2": q/k/v biases; "qwen3": per-head RMSNorm of q and k, no biases
    mrope_layout: str  # "sectioned" (t, h, w in consecutive frequency sections) or "interleaved"


@dataclass(frozen=True)
class VisionVariant:
    name: str
    block_norm: str  # "layer_norm" or "rms_norm"
    mlp: str  # "quick_gelu" (fc1/fc2), "swiglu" (gate/up/down), "gelu_tanh" (fc1/fc2)
    fused_qkv: bool  # one attn_qkv tensor instead of attn_q / attn_k / attn_v
    patch_bias: bool  # the Conv3D patch embedding has a bias
    windowed: bool  # window attention, except on the full-attention layers the file lists
    merger_norm: str  # the final merger's norm, applied to each patch before the merge
    # How a video's temporal grid index becomes its M-RoPE t position:
    # "frame_index": t itself; "seconds": int(t * second_per_grid_t * tokens_per_second), absolute time.
    video_time: str
    tokens_per_second: int = 0  # "seconds" only


QWEN2_TEXT = TextVariant("qwen2", block="qwen2", mrope_layout="sectioned")

QWEN2_VL_VISION = VisionVariant(
    "qwen2-vl", block_norm="layer_norm", mlp="quick_gelu", fused_qkv=False, patch_bias=False, windowed=False,
    merger_norm="layer_norm", video_time="frame_index",
)

TEXT_VARIANTS = {"qwen2vl": QWEN2_TEXT}
VISION_VARIANTS = {"qwen2vl_merger": QWEN2_VL_VISION}
