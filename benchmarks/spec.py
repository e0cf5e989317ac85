"""What one measurement is (`Spec`) and the inputs every engine gets the same: the shared ground of
`worker.py` (ours) and `llama_cpp_runner.py` (llama.cpp), which both depend on it and not on each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.machine import peak_rss_bytes

WARMUP_TOKENS = 8
# Where a chat template puts an image (Qwen2-VL, Qwen2.5-VL and Qwen3-VL alike): ours expands the pad
# to the image's tokens; llama.cpp's libmtmd writes the vision start / end tokens around its own marker.
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
FIRST_ORDINARY_SPECIAL_ID = 151643  # Qwen2's special tokens start here; prompts stay below it


@dataclass(frozen=True)
class Spec:
    kind: str
    model: str
    n_threads: int
    prefill_tokens: int = 512
    decode_tokens: int = 128
    n_ctx: int = 4096
    mmproj: str | None = None
    images: dict[str, list[int]] | None = None  # label -> [width, height]
    ttft_image: str | None = None  # the label of the image the question is about
    prompt: str | None = None  # vision: the chat prompt of the question, one IMAGE_PLACEHOLDER where the image goes
    llama_extra_buffers: bool = True  # llama.cpp's repacked / AMX weight buffers (its default)
    precision: str = "fast"  # ours: "fast" (the default), "int8" (8-bit projector weights too) or "exact"


def prompt_ids(count: int, seed: int = 7) -> np.ndarray:
    """The same ordinary (non-special) token ids for every engine."""
    return np.random.default_rng(seed).integers(0, FIRST_ORDINARY_SPECIAL_ID, count).astype(np.int32)


def text_positions(start: int, count: int) -> np.ndarray:
    """M-RoPE positions of plain text: the same index on all three axes."""
    return np.broadcast_to(np.arange(start, start + count, dtype=np.int32), (3, count)).copy()


def text_result(spec: Spec, load, prefill, decode) -> dict[str, Any]:
    return {
        "load": load.as_dict(),
        "prefill": prefill.as_dict() | {"tokens_per_s": spec.prefill_tokens / prefill.seconds},
        "decode": decode.as_dict() | {"tokens_per_s": spec.decode_tokens / decode.seconds},
        "peak_rss_bytes": peak_rss_bytes(),
    }


def random_image(width: int, height: int, seed: int):
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)
