"""The generation loop: `prefill` the prompt, then `decode_one` token at a time, each picked by
`Sampler.sample`; `stream_text` turns the tokens into text and cuts it at stop strings.

The decoder is passed to each step rather than held, so that a caller (or a test) can stand in for it.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from .generation import FinishReason, GenerationConfig, Sampler, StopStringMatcher
from .prompt import Media, PreparedPrompt, vision_rows
from .prompt_cache import PromptCache
from .rope_index import positions_for_generated
from .tokenizer import Tokenizer

Encoder = Callable[[Media, str], np.ndarray]  # (media, precision) -> vision embeddings


@dataclass
class Outcome:
    """How a generation ended, known once its iterator is done."""

    finish_reason: FinishReason = "length"


def prefill(decoder: Any, cache: PromptCache, prompt: PreparedPrompt, precision: str, encode: Encoder) -> np.ndarray:
    """Runs the part of `prompt` the KV cache does not hold yet (at this precision) and returns the
    last position's logits."""
    common = cache.reusable(prompt, precision)
    decoder.truncate(common)
    cache.truncate(common)
    embeddings, rows = vision_rows(prompt, common, lambda media: cache.embeddings(media, precision, encode))
    logits = decoder.forward(
        prompt.ids[common:], np.ascontiguousarray(prompt.positions[:, common:]),
        embeddings=embeddings, embedded_rows=rows, logits="last", precision=precision,
    )
    cache.hold(prompt.keys, precision)
    return logits


def decode_one(decoder: Any, cache: PromptCache, token: int, index: int, rope_delta: int, precision: str) -> np.ndarray:
    """Runs one generated token at sequence index `index` and returns its logits."""
    position = positions_for_generated(rope_delta, index, 1).astype(np.int32)
    logits = decoder.forward(np.array([token], dtype=np.int32), position, precision=precision)
    cache.append(token)
    return logits


def generate_tokens(decoder: Any, cache: PromptCache, prompt: PreparedPrompt, config: GenerationConfig, *,
                    precision: str, encode: Encoder, end_ids: Collection[int], n_ctx: int,
                    outcome: Outcome) -> Iterator[int]:
    """The new tokens, up to an end token (not yielded), max_new_tokens or a full context. A token's
    own decoder step runs only when the next token is asked for."""
    logits = prefill(decoder, cache, prompt, precision, encode)
    sampler = Sampler(config)
    history = list(prompt.ids)
    for step in range(config.max_new_tokens):
        token = sampler.sample(logits, history)
        if token in end_ids:
            outcome.finish_reason = "stop"
            return
        history.append(token)
        yield token
        index = len(prompt) + step
        if step + 1 == config.max_new_tokens or index + 1 > n_ctx:
            return  # a full context ends the answer as max_new_tokens would
        logits = decode_one(decoder, cache, token, index, prompt.rope_delta, precision)


def stream_text(tokens: Iterator[int], tokenizer: Tokenizer, stop: Sequence[str], outcome: Outcome
                ) -> Iterator[tuple[str, int]]:
    """(text, token) per token; text is empty while a character or a possible stop string is
    incomplete, and ends exactly before the first stop string. Held-back text comes last, with
    token -1."""
    matcher = StopStringMatcher(stop)
    pieces = tokenizer.stream_decoder(skip_special_tokens=True)
    with closing(tokens):
        for token in tokens:
            yield matcher.feed(pieces.feed(token)), token
            if matcher.stopped:
                outcome.finish_reason = "stop"
                return
    tail = matcher.feed(pieces.flush()) + matcher.flush()
    if tail:
        yield tail, -1
