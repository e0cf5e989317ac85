"""What the prefix cache saves in a conversation about one image: the first question pays for the
vision encoder and the whole prompt; a follow-up runs only its own new tokens.

    python -m benchmarks.chat_reuse [--model qwen2vl-2b] [--image-size 448] [--quant Q4_K_M]

Uses the benchmark's cached model of that shape (python -m benchmarks.run --model ... makes it).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.model_factory import CACHE_DIR, DEFAULT_MODEL, MODELS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(MODELS), default=DEFAULT_MODEL)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    import qvl_local

    shape = MODELS[args.model]
    text = CACHE_DIR / f"{shape.name}-{args.quant}.gguf"
    mmproj = CACHE_DIR / f"mmproj-{shape.name}-F16.gguf"
    model = qvl_local.load(text, mmproj=mmproj, n_threads=args.threads)
    image = np.random.default_rng(0).integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)
    messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": "What is in this picture?"}]}]

    def turn(label: str) -> str:
        started = time.perf_counter()
        answer = model.chat(messages, max_new_tokens=8)
        print(f"{label:<34} {time.perf_counter() - started:7.2f} s")
        return answer

    messages.append({"role": "assistant", "content": turn("first question (image + prompt)")})
    messages.append({"role": "user", "content": "And what colors does it have?"})
    turn("follow-up (cached prefix reused)")
    model.reset()
    turn("same follow-up from scratch")


if __name__ == "__main__":
    main()
