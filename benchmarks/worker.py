"""One measurement in a process of its own, so load time and peak memory are this model's alone.

    python -m benchmarks.worker '<json spec>'

The spec names the kind ("ours-text", "ours-vision", "llama-text", "llama-vision"), the model files and the sizes;
the last line printed is the result as JSON. `run.py` starts these one after another.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.machine import peak_rss_bytes, timed, timed_quietly

WARMUP_TOKENS = 8
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
    question: str = "Describe this image in detail."
    llama_extra_buffers: bool = True  # llama.cpp's repacked / AMX weight buffers (its default)
    precision: str = "fast"  # ours: "fast" (the default), "int8" (8-bit projector weights too) or "exact"


def prompt_ids(count: int, seed: int = 7) -> np.ndarray:
    """The same ordinary (non-special) token ids for every engine."""
    return np.random.default_rng(seed).integers(0, FIRST_ORDINARY_SPECIAL_ID, count).astype(np.int32)


def text_positions(start: int, count: int) -> np.ndarray:
    """M-RoPE positions of plain text: the same index on all three axes."""
    return np.broadcast_to(np.arange(start, start + count, dtype=np.int32), (3, count)).copy()


def measure_ours_text(spec: Spec) -> dict[str, Any]:
    import qvl_local

    load, model = timed(lambda: qvl_local.load(spec.model, mmproj=False, n_threads=spec.n_threads, n_ctx=spec.n_ctx))
    decoder = model._decoder  # the C++ decoder itself: no sampling or stop logic between the tokens
    ids = prompt_ids(spec.prefill_tokens)
    decoder.forward(ids[:WARMUP_TOKENS], text_positions(0, WARMUP_TOKENS), logits="last")

    def prefill() -> None:
        decoder.forward(ids, text_positions(0, len(ids)), logits="last")

    def decode() -> None:
        token = int(ids[0])
        for position in range(spec.decode_tokens):
            logits = decoder.forward(np.array([token], dtype=np.int32), text_positions(position, 1), logits="last")
            token = int(np.argmax(logits))

    prefill_timing, _ = timed_quietly(prefill, prepare=lambda: decoder.truncate(0))
    decode_timing, _ = timed_quietly(decode, prepare=lambda: decoder.truncate(0))
    return text_result(spec, load, prefill_timing, decode_timing)


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


def measure_ours_vision(spec: Spec) -> dict[str, Any]:
    import qvl_local
    from qvl_local.chat import render_chat

    load, model = timed(lambda: qvl_local.load(spec.model, mmproj=spec.mmproj, n_threads=spec.n_threads, n_ctx=spec.n_ctx,
                                               precision=spec.precision))
    images = spec.images or {}
    seeds = iter(range(100, 200))  # a new image per attempt: no cached embedding or prefix helps a repeat
    width, height = images[spec.ttft_image]
    question: dict[str, Any] = {}

    def first_token() -> None:
        image = random_image(width, height, next(seeds))
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": spec.question}]}]
        rendered = render_chat(messages, template=model.tokenizer.chat_template)
        stream = model.generate(rendered.prompt, images=rendered.images, stream=True, max_new_tokens=1)
        next(iter(stream), None)  # a first token that ends the answer still took this long
        question["prompt_tokens"] = len(model._cached_keys)

    ttft, _ = timed_quietly(first_token, prepare=model.reset)
    encodes = {}
    for label, (w, h) in images.items():
        image = random_image(w, h, next(seeds))
        timing, embeddings = timed_quietly(lambda img=image: model.encode_image(img))
        encodes[label] = timing.as_dict() | {"image_tokens": int(embeddings.shape[0])}
    return {
        "load": load.as_dict(),
        "encode": encodes,
        "time_to_first_token": ttft.as_dict() | {"image": spec.ttft_image, **question},
        "peak_rss_bytes": peak_rss_bytes(),
    }


def main(argv: list[str] | None = None) -> None:
    spec = Spec(**json.loads((argv if argv is not None else sys.argv[1:])[0]))
    if spec.kind == "ours-text":
        result = measure_ours_text(spec)
    elif spec.kind == "ours-vision":
        result = measure_ours_vision(spec)
    elif spec.kind in ("llama-text", "llama-vision"):
        from benchmarks import llama_cpp_runner

        measure_llama = llama_cpp_runner.measure_llama_text if spec.kind == "llama-text" else llama_cpp_runner.measure_llama_vision
        result = measure_llama(spec)
    else:
        raise SystemExit(f"unknown measurement kind {spec.kind!r}")
    result["finished_at"] = time.time()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
