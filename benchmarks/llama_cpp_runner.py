"""The same text measurements through llama.cpp (llama-cpp-python, the optional `llama` extra).

Prefill is one `eval` of the prompt (batches of 512, logits of the last position only); decode feeds
one token at a time from a fresh cache and picks the next by argmax, as our side does. llama-cpp-python
exposes no Qwen2-VL vision path (its multimodal chat handlers cover LLaVA-style CLIP projectors), so
vision is compared with llama.cpp's published figures instead (see report.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.machine import timed, timed_quietly
from benchmarks.worker import WARMUP_TOKENS, Spec, prompt_ids, text_result


def llama_cpp_version() -> str | None:
    """The installed llama-cpp-python's version, or None when it is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return None
    return str(llama_cpp.__version__)


def measure_llama_text(spec: Spec) -> dict[str, Any]:
    from llama_cpp import Llama

    def load() -> Llama:
        return Llama(model_path=spec.model, n_ctx=spec.n_ctx, n_batch=512, n_threads=spec.n_threads,
                     n_threads_batch=spec.n_threads, logits_all=False, verbose=False)

    load_timing, llm = timed(load)
    ids = [int(t) for t in prompt_ids(spec.prefill_tokens)]
    llm.eval(ids[:WARMUP_TOKENS])

    def decode() -> None:
        token = ids[0]
        for _ in range(spec.decode_tokens):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))

    prefill_timing, _ = timed_quietly(lambda: llm.eval(ids), prepare=llm.reset)
    decode_timing, _ = timed_quietly(decode, prepare=llm.reset)
    return text_result(spec, load_timing, prefill_timing, decode_timing) | {"version": llama_cpp_version()}
