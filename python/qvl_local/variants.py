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
    chat_template: str  # the package's built-in Jinja template (templates/<name>.jinja) for files without one


@dataclass(frozen=True)
class VisionVariant:
    name: str
    block_norm: str  # "layer_norm" or "rms_norm"
    mlp: str  # "quick_gelu" (fc1/fc2), "swiglu" (gate/up/down), "gelu_tanh" (fc1/fc2)
    fused_qkv: bool  # one attn_qkv tensor instead of attn_q / attn_k / attn_v
    patch_bias: bool  # the Conv3D patch embedding has a bias
    learned_positions: bool  # a learned position grid (v.position_embd) interpolated to each image
    windowed: bool  # window attention, except on the full-attention layers the file lists
    merger_norm: str  # the final merger's norm, applied to each patch before the merge
    # How a video's time reaches the decoder:
    # "frame_index": the M-RoPE t position is the temporal grid index itself (Qwen2-VL);
    # "seconds": int(t * second_per_grid_t * tokens_per_second), absolute time (Qwen2.5-VL; the original
    #   Qwen rule, which transformers 5.x changed to t * int(second_per_grid_t) * tokens_per_second);
    # "timestamps": each frame pair is a vision block of its own after its time written as text,
    #   "<1.2 seconds>" (Qwen3-VL).
    video_time: str
    # The image processor's pixel range (HF's min_pixels / max_pixels); the model's default ceiling is
    # lower (prompt.py).
    min_pixels: int
    max_pixels: int
    # The video processor's pixel range: per frame ("frame": Qwen2-VL's video processor, which falls
    # back to the image processor's range) or over all frames of a video together ("video": Qwen3-VL's
    # video_preprocessor_config, shortest / longest edge).
    video_min_pixels: int
    video_max_pixels: int
    video_pixel_range: str
    tokens_per_second: int = 0  # "seconds" only

    def video_time_scale(self, second_per_grid_t: float) -> float:
        """M-RoPE t positions per temporal grid step of a video whose grid steps are this many seconds apart."""
        if self.video_time == "seconds":
            return second_per_grid_t * self.tokens_per_second
        return 1.0


# Qwen2-VL and Qwen2.5-VL share the text model (llama.cpp writes `qwen2vl` for both; Ollama's single
# Qwen2.5-VL file says `qwen25vl`) and the chat template.
QWEN2_TEXT = TextVariant("qwen2", block="qwen2", mrope_layout="sectioned", chat_template="qwen2vl")
QWEN3_TEXT = TextVariant("qwen3", block="qwen3", mrope_layout="interleaved", chat_template="qwen3vl")

QWEN2_VL_VISION = VisionVariant(
    "qwen2-vl", block_norm="layer_norm", mlp="quick_gelu", fused_qkv=False, patch_bias=False,
    learned_positions=False, windowed=False, merger_norm="layer_norm", video_time="frame_index",
    min_pixels=56 * 56, max_pixels=12845056,
    video_min_pixels=56 * 56, video_max_pixels=12845056, video_pixel_range="frame",
)
QWEN25_VL_VISION = VisionVariant(
    "qwen2.5-vl", block_norm="rms_norm", mlp="swiglu", fused_qkv=False, patch_bias=False,
    learned_positions=False, windowed=True, merger_norm="rms_norm", video_time="seconds", tokens_per_second=2,
    min_pixels=56 * 56, max_pixels=12845056,
    video_min_pixels=56 * 56, video_max_pixels=12845056, video_pixel_range="frame",
)
QWEN3_VL_VISION = VisionVariant(
    "qwen3-vl", block_norm="layer_norm", mlp="gelu_tanh", fused_qkv=True, patch_bias=True,
    learned_positions=True, windowed=False, merger_norm="layer_norm", video_time="timestamps",
    min_pixels=65536, max_pixels=16777216,  # Qwen3-VL's preprocessor_config: shortest / longest edge
    video_min_pixels=4096, video_max_pixels=25165824, video_pixel_range="video",
)

TEXT_VARIANTS = {"qwen2vl": QWEN2_TEXT, "qwen25vl": QWEN2_TEXT, "qwen3vl": QWEN3_TEXT}
VISION_VARIANTS = {"qwen2vl_merger": QWEN2_VL_VISION, "qwen2.5vl_merger": QWEN25_VL_VISION,
                   "qwen3vl_merger": QWEN3_VL_VISION}
# Single files that hold their vision encoder too (Ollama's layout): the text architecture names it.
EMBEDDED_VISION = {"qwen25vl": "qwen2.5vl_merger"}
# Ollama's single files of an architecture we run only in llama.cpp's two-file layout, and what to use
# instead: Ollama's own Qwen3-VL files name and arrange their tensors in a layout of their own.
UNSUPPORTED_EMBEDDED_VISION = {
    "qwen3vl": "the llama.cpp layout (a text GGUF and its mmproj), e.g. hf.co/Qwen/Qwen3-VL-2B-Instruct-GGUF, "
               "hf.co/Qwen/Qwen3-VL-4B-Instruct-GGUF or hf.co/Qwen/Qwen3-VL-8B-Instruct-GGUF",
}
