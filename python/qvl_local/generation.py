"""Building blocks of the generate loop: settings, the token sampler, stop strings."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from qvl_local.errors import QvlError

FinishReason = Literal["stop", "length"]


class GenerationConfigError(QvlError, ValueError):
    """A generation setting outside its valid range."""


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings; temperature 0 means greedy. A `stop` string or list becomes a tuple."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_int("max_new_tokens", self.max_new_tokens, minimum=1)
        _check_float("temperature", self.temperature, lambda v: v >= 0.0, ">= 0")
        _check_int("top_k", self.top_k, minimum=0)
        _check_float("top_p", self.top_p, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        _check_float("min_p", self.min_p, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        _check_float("repetition_penalty", self.repetition_penalty, lambda v: v > 0.0, "> 0")
        if self.seed is not None:
            _check_int("seed", self.seed, minimum=0)
        # frozen: normalize the stop strings through object.__setattr__
        object.__setattr__(self, "stop", _normalize_stops(self.stop))


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise GenerationConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise GenerationConfigError(f"{name} must be >= {minimum}, got {value}")


def _check_float(name: str, value: object, in_range: Callable[[float], bool], expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise GenerationConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not in_range(float(value)):
        raise GenerationConfigError(f"{name} must be {expected}, got {value}")


def _normalize_stops(stop: str | Sequence[str]) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    for item in stops:
        if not isinstance(item, str) or not item:
            raise GenerationConfigError(f"stop strings must be non-empty strings, got {item!r}")
    return stops


@dataclass(frozen=True)
class GenerationResult:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: FinishReason


class Sampler:
    """Picks the next token from a step's logits.

    Order (as in HF transformers): repetition penalty, then greedy argmax when temperature is 0 (or
    top_k is 1), else temperature, top-k, top-p, min-p and a draw from the renormalized rest with a
    numpy Generator seeded by `config.seed`.
    """

    def __init__(self, config: GenerationConfig) -> None:
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        # Scratch arrays reused across steps: a fresh vocabulary-sized array per operation costs
        # more (page faults) than the arithmetic on it.
        self._scratch: dict[str, np.ndarray] = {}

    def sample(self, logits: np.ndarray, previous_ids: Sequence[int] = ()) -> int:
        scores = _checked_logits(logits)
        if self.config.repetition_penalty != 1.0 and len(previous_ids) > 0:
            penalized = self._buffer("penalized", scores.size, scores.dtype)
            np.copyto(penalized, scores)
            scores = apply_repetition_penalty(penalized, previous_ids, self.config.repetition_penalty)
        if self.config.temperature == 0.0 or self.config.top_k == 1:
            return int(np.argmax(scores))
        return self._draw(scores)

    def _draw(self, scores: np.ndarray) -> int:
        config = self.config
        candidates = None
        if 0 < config.top_k < scores.size:
            candidates = _top_k_indices(scores, config.top_k)
            scores = scores[candidates]
        weights = self._weights(scores)
        # min-p and top-p both keep the tokens at or above a weight; the stricter one wins
        threshold = config.min_p
        if config.top_p < 1.0:
            descending = self._buffer("sorted", weights.size, weights.dtype)
            np.copyto(descending, weights)
            descending.sort()
            threshold = max(threshold, _top_p_threshold(descending[::-1], config.top_p))
        if threshold > 0.0:
            kept = np.flatnonzero(np.greater_equal(
                weights, threshold, out=self._buffer("kept", weights.size, np.bool_)))
            chosen = int(kept[self._choose(weights[kept])])
        else:
            chosen = self._choose(weights)
        return int(candidates[chosen]) if candidates is not None else chosen

    def _weights(self, scores: np.ndarray) -> np.ndarray:
        """exp((scores - max) / temperature): probabilities up to a factor, the best one 1."""
        weights = self._buffer("weights", scores.size, np.result_type(scores.dtype, np.float32))
        np.subtract(scores, scores.max(), out=weights)
        np.divide(weights, self.config.temperature, out=weights)
        return np.exp(weights, out=weights)

    def _choose(self, weights: np.ndarray) -> int:
        """Index drawn with probability proportional to `weights`."""
        index = _running_sum_search(weights, self._rng.random(), side="right")
        if weights[index] == 0:  # rounding at the very end of the range: take the last real one
            index = int(np.flatnonzero(weights[:index])[-1])
        return index

    def _buffer(self, name: str, size: int, dtype: np.dtype) -> np.ndarray:
        buffer = self._scratch.get(name)
        if buffer is None or buffer.size != size or buffer.dtype != dtype:
            buffer = self._scratch[name] = np.empty(size, dtype)
        return buffer


def _top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, in no particular order (argpartition: linear time)."""
    if np.isneginf(scores.min()):
        # Masked (-inf) tokens are skipped first: long runs of ties make introselect slow.
        pool = np.flatnonzero(scores > -np.inf)
        if pool.size <= k:
            return pool
        return pool[np.argpartition(scores[pool], pool.size - k)[-k:]]
    return np.argpartition(scores, scores.size - k)[-k:]


def _checked_logits(logits: np.ndarray) -> np.ndarray:
    scores = np.asarray(logits)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"logits must be a non-empty 1-D array, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.floating):
        raise ValueError(f"logits must be floating point, got {scores.dtype}")
    best = scores.max()
    if not np.isfinite(best):  # NaN propagates into max; +inf or all -inf cannot be sampled
        raise ValueError(f"logits must hold finite values (largest is {best})")
    return scores


def apply_repetition_penalty(logits: np.ndarray, previous_ids: Sequence[int],
                             penalty: float) -> np.ndarray:
    """CTRL's rule as in HF, in place: logits of tokens already seen are divided by `penalty`
    when positive and multiplied by it when negative. Returns `logits`."""
    if len(previous_ids) == 0:
        return logits
    seen = np.unique(np.asarray(previous_ids, dtype=np.int64))
    if seen[0] < 0 or seen[-1] >= logits.size:
        raise ValueError(f"previous token ids must lie in [0, {logits.size})")
    picked = logits[seen]
    logits[seen] = np.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def _top_p_threshold(descending: np.ndarray, top_p: float) -> float:
    """Smallest weight in the shortest most-likely set whose mass reaches `top_p` of the total,
    given the weights sorted in descending order. Sorting values is a fraction of an argsort's
    cost; tokens tied with that smallest weight are all kept."""
    return float(descending[_running_sum_search(descending, top_p, side="left")])


_SEARCH_BLOCK = 1024


def _running_sum_search(weights: np.ndarray, fraction: float, side: Literal["left", "right"]) -> int:
    """`np.searchsorted(np.cumsum(weights), fraction * weights.sum(), side)`, clipped to a valid
    index, in float64 but without a float64 cumsum over the whole vocabulary (which costs
    milliseconds): block sums locate the block, a cumsum inside it the index."""
    starts = np.arange(0, weights.size, _SEARCH_BLOCK)
    block_ends = np.cumsum(np.add.reduceat(weights, starts, dtype=np.float64))
    target = fraction * block_ends[-1]
    block = min(int(np.searchsorted(block_ends, target, side=side)), starts.size - 1)
    before = block_ends[block - 1] if block else 0.0
    inside = np.cumsum(weights[starts[block]:starts[block] + _SEARCH_BLOCK], dtype=np.float64)
    offset = min(int(np.searchsorted(inside, target - before, side=side)), inside.size - 1)
    return int(starts[block]) + offset


class StopStringMatcher:
    """Cuts streamed text before the first stop string.

    `feed` returns the text that can be emitted now. A trailing part that could still grow into a
    stop string is held back; once a stop string is complete, the text before it is returned,
    `stopped` becomes True, `matched` names the stop string, and later feeds return "". Generation
    stops at the first moment any stop string is complete (as in the OpenAI API).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = _normalize_stops(stops)
        self._held = ""
        self.stopped = False
        self.matched: str | None = None

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        text = self._held + piece
        match = self._earliest_stop(text)
        if match is not None:
            position, self.matched = match
            self.stopped = True
            self._held = ""
            return text[:position]
        held = self._longest_partial_suffix(text)
        self._held = text[len(text) - held:] if held else ""
        return text[:len(text) - held]

    def flush(self) -> str:
        """The held-back text, for when generation ends without a stop string."""
        text, self._held = self._held, ""
        return text

    def _earliest_stop(self, text: str) -> tuple[int, str] | None:
        found = [(position, stop) for stop in self._stops if (position := text.find(stop)) >= 0]
        return min(found, key=lambda item: item[0]) if found else None

    def _longest_partial_suffix(self, text: str) -> int:
        """Length of the longest end of `text` that is a proper prefix of some stop string."""
        longest = max((len(stop) for stop in self._stops), default=0)
        for length in range(min(len(text), longest - 1), 0, -1):
            suffix = text[-length:]
            if any(stop.startswith(suffix) for stop in self._stops):
                return length
        return 0
