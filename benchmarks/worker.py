"""One measurement in a process of its own, so load time and peak memory are this model's alone.

    python -m benchmarks.worker '<json spec>'

The spec names the kind ("ours-text", "ours-vision", "llama-text", "llama-vision"), the model files and the sizes;
the last line printed is the result as JSON. `run.py` starts these one after another.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from benchmarks.machine import peak_rss_bytes, timed, timed_quietly
from benchmarks.spec import WARMUP_TOKENS, Spec, prompt_ids, random_image, text_positions, text_result


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


def measure_ours_vision(spec: Spec) -> dict[str, Any]:
    import qvl_local

    load, model = timed(lambda: qvl_local.load(spec.model, mmproj=spec.mmproj, n_threads=spec.n_threads, n_ctx=spec.n_ctx,
                                               precision=spec.precision))
    images = spec.images or {}
    seeds = iter(range(100, 200))  # a new image per attempt: no cached embedding or prefix helps a repeat
    width, height = images[spec.ttft_image]
    question: dict[str, Any] = {}

    def first_token() -> None:
        image = random_image(width, height, next(seeds))
        stream = model.generate(spec.prompt, images=[image], stream=True, max_new_tokens=1)
        next(iter(stream), None)  # a first token that ends the answer still took this long
        question["prompt_tokens"] = len(model._cache)

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
