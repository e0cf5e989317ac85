"""Qwen2 byte-level BPE tokenizer built from a GGUF file's own `tokenizer.ggml.*` metadata.

The GGUF stores the vocabulary in GPT-2's byte-to-unicode form (a space is "Ġ"), the BPE merges as
"left right" strings, and a type per token. We rebuild the same pipeline HF's Qwen2 tokenizer.json
describes: NFC normalizer, Qwen2 regex split, byte-level mapping, BPE, byte-level decoder. Control
tokens (type 3) become special added tokens and user-defined tokens (type 4) plain added tokens, so
both are recognized when written in the text, as in HF and llama.cpp.
"""
from __future__ import annotations

import codecs
import math
from collections.abc import Iterable, Sequence
from functools import cached_property, lru_cache

import numpy as np
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from qvl_local.errors import ModelFormatError, QvlError

# llama.cpp's `llama_token_type` values stored in `tokenizer.ggml.token_type` that need care here
# (the others, normal 1 and unused 5, are plain vocabulary entries).
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4

# Qwen2's pre-tokenizer split (tokenizer.json `Split` pattern; llama.cpp `pre = "qwen2"`):
# contractions, letters with one optional leading non-letter, single digits, punctuation runs,
# newline runs, trailing whitespace, other whitespace.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SUPPORTED_PRE_TOKENIZERS = ("qwen2",)
# NFC shrinks UTF-8 text by at most this factor (a Hangul L+V+T jamo triple, 9 bytes, composes to one
# 3-byte syllable; U+0390 likewise has a 6-byte decomposition): what bounds the token count from the
# raw text's size.
NFC_MAX_CONTRACTION = 3


class UnknownTokenError(QvlError, KeyError):
    """A token text that is not in the vocabulary."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other
    bytes to code points 256, 257, ... in byte order."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)}
    table = {}
    shifted = 256
    for byte in range(256):
        if byte in printable:
            table[chr(byte)] = byte
        else:
            table[chr(shifted)] = byte
            shifted += 1
    return table


def _byte_level_to_bytes(token: str) -> bytes:
    """Raw bytes of a byte-level vocab string; text with unmapped characters is taken as is
    (the same fallback as the HF ByteLevel decoder)."""
    table = _unicode_to_byte()
    try:
        return bytes(table[c] for c in token)
    except KeyError:
        return token.encode("utf-8")


class StreamDecoder:
    """Turns generated token ids into text piece by piece.

    The bytes of a UTF-8 character split across tokens are held back until the character is
    complete, so no piece ever ends in a broken character. Invalid byte sequences (a random model
    can produce them) become U+FFFD exactly as in `Tokenizer.decode`.
    """

    def __init__(self, tokenizer: Tokenizer, *, skip_special_tokens: bool = False) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """The text completed by this token (possibly empty)."""
        if self._skip_special_tokens and self._tokenizer.is_special(token_id):
            return ""
        return self._utf8.decode(self._tokenizer.id_to_bytes(token_id))

    def flush(self) -> str:
        """Text still held back at the end (an unfinished character becomes U+FFFD); resets."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text


class Tokenizer:
    """Qwen2 tokenizer: `encode` / `decode` / streaming decode over the GGUF vocabulary."""

    def __init__(self, backend: HFTokenizer, tokens: list[str], token_types: np.ndarray, *,
                 eos_id: int, pad_id: int | None, chat_template: str | None) -> None:
        self._backend = backend
        self._tokens = tokens
        self._token_types = token_types
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.chat_template = chat_template

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, reader) -> Tokenizer:
        """Build from an open `gguf.GGUFReader` (the text model file)."""
        fields = _GGUFTokenizerFields(reader)
        model = fields.string("tokenizer.ggml.model")
        if model != "gpt2":
            raise ModelFormatError(f"unsupported tokenizer model {model!r} (expected 'gpt2')")
        pre = fields.string("tokenizer.ggml.pre")
        if pre not in SUPPORTED_PRE_TOKENIZERS:
            raise ModelFormatError(
                f"unsupported pre-tokenizer {pre!r} (supported: {', '.join(SUPPORTED_PRE_TOKENIZERS)})")
        return cls.from_fields(
            fields.string_array("tokenizer.ggml.tokens"),
            fields.int_array("tokenizer.ggml.token_type"),
            fields.string_array("tokenizer.ggml.merges"),
            eos_id=fields.integer("tokenizer.ggml.eos_token_id"),
            pad_id=fields.optional_integer("tokenizer.ggml.padding_token_id"),
            chat_template=fields.optional_string("tokenizer.chat_template"),
            source=getattr(reader.data, "filename", None),
        )

    @classmethod
    def from_fields(cls, tokens: list[str], token_types: Sequence[int] | np.ndarray,
                    merges: list[str], *, eos_id: int, pad_id: int | None,
                    chat_template: str | None, source: str | None = None) -> Tokenizer:
        """Build from the GGUF field values (byte-level token strings, types, "a b" merges).
        `source` (the file they came from) is named in the errors."""
        where = f"{source}: " if source else ""
        types = np.asarray(token_types, dtype=np.int32)
        if len(types) != len(tokens):
            raise ModelFormatError(
                f"{where}{len(tokens)} tokens but {len(types)} token types in the tokenizer metadata")
        for name, token_id in (("eos", eos_id), ("padding", pad_id)):
            if token_id is not None and not 0 <= token_id < len(tokens):
                raise ModelFormatError(f"{where}{name} token id {token_id} outside the vocabulary")
        try:
            backend = _build_backend(tokens, types, merges)
        except ModelFormatError as error:
            raise ModelFormatError(f"{where}{error}") from None
        return cls(backend, list(tokens), types, eos_id=eos_id, pad_id=pad_id,
                   chat_template=chat_template)

    # --- vocabulary -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    @cached_property
    def max_token_bytes(self) -> int:
        """The most text bytes one token stands for (an upper bound: a vocabulary string's UTF-8
        length is at least the bytes it stands for)."""
        return max((len(token.encode("utf-8", "surrogatepass")) for token in self._tokens), default=1)

    def max_text_bytes(self, n_tokens: int) -> int:
        """The most UTF-8 bytes of text that can encode to `n_tokens` tokens or fewer."""
        return n_tokens * NFC_MAX_CONTRACTION * self.max_token_bytes

    def min_token_count(self, text: str) -> int:
        """A lower bound on `len(self.encode(text))`, from the text's size alone: what refuses a
        prompt that cannot fit a context without tokenizing all of it."""
        size = len(text.encode("utf-8", "surrogatepass"))
        return math.ceil(size / self.max_text_bytes(1))

    def token_id(self, text: str) -> int:
        """Id of the token whose vocabulary text is `text` (e.g. "<|im_end|>")."""
        token_id = self._backend.token_to_id(text)
        if token_id is None:
            raise UnknownTokenError(f"token {text!r} is not in the vocabulary")
        return token_id

    def is_special(self, token_id: int) -> bool:
        """True for control tokens (<|im_start|>, <|image_pad|>, ...)."""
        self._check_id(token_id)
        return int(self._token_types[token_id]) == TOKEN_TYPE_CONTROL

    def id_to_bytes(self, token_id: int) -> bytes:
        """The raw bytes a token stands for; control and user-defined tokens give their text."""
        self._check_id(token_id)
        token = self._tokens[token_id]
        if int(self._token_types[token_id]) in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED):
            return token.encode("utf-8")
        return _byte_level_to_bytes(token)

    # --- text -----------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special tokens written in the text map to their ids. No BOS/EOS."""
        return self._backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; invalid UTF-8 becomes U+FFFD. Control tokens are dropped on request."""
        ids = [int(i) for i in ids]
        for token_id in ids:
            self._check_id(token_id)
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def stream_decoder(self, *, skip_special_tokens: bool = False) -> StreamDecoder:
        return StreamDecoder(self, skip_special_tokens=skip_special_tokens)

    def _check_id(self, token_id: int) -> None:
        if not 0 <= token_id < len(self._tokens):
            raise ValueError(f"token id {token_id} outside the vocabulary (size {len(self._tokens)})")


def _build_backend(tokens: list[str], types: np.ndarray, merges: list[str]) -> HFTokenizer:
    vocab = {token: token_id for token_id, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ModelFormatError("the tokenizer vocabulary holds duplicate tokens")
    merge_pairs = _merge_pairs(merges, vocab)
    try:
        bpe = models.BPE(vocab, merge_pairs, ignore_merges=False)
    except Exception as error:  # tokenizers raises a bare Exception for what it finds inconsistent
        raise ModelFormatError(f"the tokenizer's vocabulary and merges are inconsistent: {error}") from None
    backend = HFTokenizer(bpe)
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    # Added tokens are matched in the raw text before normalization, and keep their vocab ids.
    backend.add_special_tokens([
        AddedToken(tokens[i], special=True, normalized=False)
        for i in np.flatnonzero(types == TOKEN_TYPE_CONTROL)])
    backend.add_tokens([
        AddedToken(tokens[i], special=False, normalized=False)
        for i in np.flatnonzero(types == TOKEN_TYPE_USER_DEFINED)])
    return backend


def _merge_pairs(merges: list[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """The merges "left right" as pairs whose parts and result are all vocabulary tokens: checked here
    because the tokenizers library raises a bare Exception for a missing part and panics (a
    PanicException, which `except Exception` does not catch, and a Rust backtrace) for a missing
    result."""
    pairs = []
    for merge in merges:
        left, space, right = merge.partition(" ")
        if not space or " " in right or left not in vocab or right not in vocab or left + right not in vocab:
            raise _first_bad_merge(merges, vocab)
        pairs.append((left, right))
    return pairs


def _first_bad_merge(merges: list[str], vocab: dict[str, int]) -> ModelFormatError:
    for index, merge in enumerate(merges):
        pair = merge.split(" ")
        if len(pair) != 2:
            return ModelFormatError(f"malformed BPE merge {index} {merge!r} (expected 'left right')")
        for token in (pair[0], pair[1], pair[0] + pair[1]):
            if token not in vocab:
                return ModelFormatError(f"BPE merge {index} {merge!r} needs the token {token!r}, which is not in the vocabulary")
    raise AssertionError("no bad merge")


class _GGUFTokenizerFields:
    """Typed access to a GGUFReader's metadata fields, with clear errors for missing keys."""

    def __init__(self, reader) -> None:
        self._fields = reader.fields

    def _field(self, key: str):
        field = self._fields.get(key)
        if field is None:
            raise ModelFormatError(f"GGUF metadata key {key!r} is missing")
        return field

    def string(self, key: str) -> str:
        field = self._field(key)
        return bytes(field.parts[field.data[0]]).decode("utf-8")

    def optional_string(self, key: str) -> str | None:
        return self.string(key) if key in self._fields else None

    def string_array(self, key: str) -> list[str]:
        field = self._field(key)
        parts = field.parts
        try:
            return [parts[i].tobytes().decode("utf-8") for i in field.data]
        except UnicodeDecodeError as err:
            raise ModelFormatError(f"GGUF metadata {key!r} holds invalid UTF-8: {err}") from None

    def int_array(self, key: str) -> np.ndarray:
        field = self._field(key)
        parts = field.parts
        if not field.data:
            return np.zeros(0, dtype=np.int32)
        return np.concatenate([parts[i] for i in field.data]).astype(np.int32)

    def integer(self, key: str) -> int:
        field = self._field(key)
        return int(field.parts[field.data[0]][0])

    def optional_integer(self, key: str) -> int | None:
        return self.integer(key) if key in self._fields else None
