"""What a model keeps between calls: the prefix its KV cache holds, and recent vision embeddings.

A conversation that continues sends the same prefix again (earlier turns, the same images): only
the part after the longest common prefix needs the decoder, and an image already encoded needs no
ViT. Both are kept per precision: a prefix or an embedding computed at one precision is never used
at another, so what a call returns never depends on the calls before it.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from .prompt import Media, PreparedPrompt

MAX_CACHED_EMBEDDINGS = 8  # media; a few images of a conversation


class PromptCache:
    """Keys (a token id, or (media digest, index) for a vision token) of the positions the decoder's
    KV cache holds, the precision they were computed at, and an LRU of vision embeddings."""

    def __init__(self, max_embeddings: int = MAX_CACHED_EMBEDDINGS):
        self.keys: list[Hashable] = []
        self.precision: str | None = None
        self._max_embeddings = max_embeddings
        self._embeddings: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.keys)

    def reusable(self, prompt: PreparedPrompt, precision: str) -> int:
        """How many leading positions of `prompt` the KV cache holds already, computed at `precision`;
        never all of them, since the last position's logits must be computed."""
        if precision != self.precision:
            return 0
        limit = min(len(self.keys), len(prompt.keys) - 1)
        common = 0
        while common < limit and self.keys[common] == prompt.keys[common]:
            common += 1
        return common

    def truncate(self, length: int) -> None:
        del self.keys[length:]

    def hold(self, keys: Sequence[Hashable], precision: str) -> None:
        """The KV cache now holds these positions, computed at `precision`."""
        self.keys = list(keys)
        self.precision = precision

    def append(self, key: Hashable) -> None:
        self.keys.append(key)

    def forget_prefix(self) -> None:
        self.keys = []
        self.precision = None

    def embeddings(self, media: Media, precision: str, encode: Callable[[Media, str], np.ndarray]) -> np.ndarray:
        """The vision embeddings of `media` at `precision`, encoded on first use."""
        key = (media.digest, precision)
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            return self._embeddings[key]
        embeddings = encode(media, precision)
        self._embeddings[key] = embeddings
        while len(self._embeddings) > self._max_embeddings:
            self._embeddings.popitem(last=False)
        return embeddings

    def clear(self) -> None:
        self.forget_prefix()
        self._embeddings.clear()
