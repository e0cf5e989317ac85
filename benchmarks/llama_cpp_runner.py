"""The same text measurements through llama.cpp (llama-cpp-python, the optional `llama` extra).

Prefill is one `eval` of the prompt (batches of 512, logits of the last position only); decode feeds
one token at a time from a fresh cache and picks the next by argmax, as our side does. Vision goes
through llama.cpp's libmtmd (llama-cpp-python's `mtmd_cpp` bindings): the image chunk's encode (ViT +
merger) alone, and the time to the first token of the same chat prompt as ours (image tokenized,
encoded, prompt evaluated with logits for the last position, argmax).
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from benchmarks.machine import peak_rss_bytes, timed, timed_quietly
from benchmarks.spec import IMAGE_PLACEHOLDER, WARMUP_TOKENS, Spec, prompt_ids, random_image, text_result


# What importing llama-cpp-python raises when it is missing, or installed without the shared libraries it
# loads on import (FileNotFoundError / RuntimeError from its loader).
LLAMA_CPP_LOAD_ERRORS = (ImportError, OSError, RuntimeError)


def llama_cpp_version() -> str | None:
    """The installed llama-cpp-python's version, or None when it is not installed or cannot load."""
    try:
        import llama_cpp
    except LLAMA_CPP_LOAD_ERRORS:
        return None
    return str(llama_cpp.__version__)


def _system_info() -> str:
    """The instruction sets llama.cpp was built for (a native build here: AVX-512 where the CPU has it)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode().strip()


def measure_llama_text(spec: Spec) -> dict[str, Any]:
    load_timing, llm = timed(lambda: _load_llama(spec))
    ids = [int(t) for t in prompt_ids(spec.prefill_tokens)]
    llm.eval(ids[:WARMUP_TOKENS])

    def decode() -> None:
        token = ids[0]
        for _ in range(spec.decode_tokens):
            llm.eval([token])
            token = int(np.argmax(last_logits(llm)))

    prefill_timing, _ = timed_quietly(lambda: llm.eval(ids), prepare=llm.reset)
    decode_timing, _ = timed_quietly(decode, prepare=llm.reset)
    return text_result(spec, load_timing, prefill_timing, decode_timing) | {
        "version": llama_cpp_version(), "system_info": _system_info()}


def last_logits(llm) -> np.ndarray:
    """The logits of the last position `eval` computed. Read from the context: without logits_all,
    llama-cpp-python's `scores` is not updated (it keeps zeros)."""
    import llama_cpp

    row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(row, shape=(llm.n_vocab(),)).astype(np.float32)


def _load_llama(spec: Spec):
    import llama_cpp
    from llama_cpp import Llama

    if not spec.llama_extra_buffers:  # Llama() has no option for it: change the defaults it starts from
        defaults = llama_cpp.llama_cpp.llama_model_default_params

        def without_extra_buffers():
            params = defaults()
            params.use_extra_bufts = False
            return params

        llama_cpp.llama_cpp.llama_model_default_params = without_extra_buffers
    return Llama(model_path=spec.model, n_ctx=spec.n_ctx, n_batch=512, n_threads=spec.n_threads,
                 n_threads_batch=spec.n_threads, logits_all=False, verbose=False)


class _Mtmd:
    """libmtmd on a loaded model: bitmaps from RGB pixels, chat prompts with an image marker."""

    def __init__(self, llm, mmproj: str, n_threads: int):
        import llama_cpp.mtmd_cpp as mtmd

        self.mtmd, self.llm = mtmd, llm
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = n_threads
        self.ctx = mtmd.mtmd_init_from_file(mmproj.encode(), llm.model, params)
        if self.ctx is None:
            raise RuntimeError(f"libmtmd could not load {mmproj}")
        llm._stack.callback(lambda: mtmd.mtmd_free(self.ctx))
        self.marker = mtmd.mtmd_default_marker().decode()

    def tokenize(self, text: str, image) -> Any:
        """The prompt's chunks (text, image, text); `text` holds the marker where the image goes."""
        rgb = np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy: ctypes wraps it in place
        bitmap = self.mtmd.mtmd_bitmap_init(image.width, image.height, (ctypes.c_uint8 * rgb.size).from_buffer(rgb))
        prompt = self.mtmd.mtmd_input_text()
        encoded = text.encode()
        prompt.text, prompt.text_len, prompt.add_special, prompt.parse_special = encoded, len(encoded), False, True
        chunks = self.mtmd.mtmd_input_chunks_init()
        bitmaps = (self.mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        status = self.mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(prompt), bitmaps, 1)
        self.mtmd.mtmd_bitmap_free(bitmap)
        if status != 0:
            raise RuntimeError(f"mtmd_tokenize failed with status {status}")
        return chunks

    def image_chunk(self, chunks) -> Any:
        for i in range(self.mtmd.mtmd_input_chunks_size(chunks)):
            chunk = self.mtmd.mtmd_input_chunks_get(chunks, i)
            if self.mtmd.mtmd_input_chunk_get_type(chunk) == self.mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                return chunk
        raise RuntimeError("the prompt has no image chunk")

    def encode(self, chunk) -> None:
        status = self.mtmd.mtmd_encode_chunk(self.ctx, chunk)
        if status != 0:
            raise RuntimeError(f"mtmd_encode_chunk failed with status {status}")

    def first_token(self, chunks) -> int:
        """Evaluates every chunk on a fresh cache and picks the first answer token."""
        import llama_cpp

        self.llm.reset()
        self.llm._ctx.kv_cache_clear()
        new_n_past = llama_cpp.llama_pos(0)
        status = self.mtmd.mtmd_helper_eval_chunks(self.ctx, self.llm._ctx.ctx, chunks, 0, 0, self.llm.n_batch, True,
                                                   ctypes.byref(new_n_past))
        if status != 0:
            raise RuntimeError(f"mtmd_helper_eval_chunks failed with status {status}")
        logits = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(logits, shape=(self.llm.n_vocab(),))))


def measure_llama_vision(spec: Spec) -> dict[str, Any]:
    def load():
        llm = _load_llama(spec)
        return llm, _Mtmd(llm, spec.mmproj, spec.n_threads)

    load_timing, (llm, mtmd) = timed(load)
    images = spec.images or {}
    seeds = iter(range(100, 200))  # the same images, in the same order, as ours
    width, height = images[spec.ttft_image]
    prompt = spec.prompt.replace(IMAGE_PLACEHOLDER, mtmd.marker)  # libmtmd adds the vision start / end tokens
    question: dict[str, Any] = {}

    def first_token() -> None:
        chunks = mtmd.tokenize(prompt, random_image(width, height, next(seeds)))
        question["prompt_tokens"] = sum(mtmd.mtmd.mtmd_input_chunk_get_n_tokens(mtmd.mtmd.mtmd_input_chunks_get(chunks, i))
                                        for i in range(mtmd.mtmd.mtmd_input_chunks_size(chunks)))
        mtmd.first_token(chunks)
        mtmd.mtmd.mtmd_input_chunks_free(chunks)

    ttft, _ = timed_quietly(first_token)
    encodes = {}
    for label, (w, h) in images.items():
        chunks = mtmd.tokenize(prompt, random_image(w, h, next(seeds)))
        chunk = mtmd.image_chunk(chunks)
        timing, _ = timed_quietly(lambda c=chunk: mtmd.encode(c))
        encodes[label] = timing.as_dict() | {"image_tokens": int(mtmd.mtmd.mtmd_input_chunk_get_n_tokens(chunk))}
        mtmd.mtmd.mtmd_input_chunks_free(chunks)
    return {
        "load": load_timing.as_dict(),
        "encode": encodes,
        "time_to_first_token": ttft.as_dict() | {"image": spec.ttft_image, **question},
        "peak_rss_bytes": peak_rss_bytes(),
        "version": llama_cpp_version(),
        "system_info": _system_info(),
    }
