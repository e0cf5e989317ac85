"""Tokenizer built from the fixture GGUF against the HF tokenizer.json of the same vocabulary."""
import unicodedata
from pathlib import Path

import gguf
import numpy as np
import pytest
import tokenizers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qvl_local.errors import ModelFormatError
from qvl_local.tokenizer import (
    TOKEN_TYPE_USER_DEFINED,
    StreamDecoder,
    Tokenizer,
    UnknownTokenError,
)

IMAGE_PAD_ID = 151655
VIDEO_PAD_ID = 151656
SPECIAL_TEXTS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]

CORPUS = [
    "Hello, world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog. It's what they'd've said; we'll see.",
    "I'M SHOUTING and I'Ve MiXeD cAsE contractions",
    "你好，世界！今天天气怎么样？我们去公园散步吧。",
    "日本語のテキスト：ひらがな、カタカナ、漢字。東京は晴れです。",
    "한국어 텍스트입니다. 안녕하세요, 만나서 반갑습니다!",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Emoji: 😀🎉🤖 flags 🇫🇷🇯🇵 skin 👍🏽 family 👨‍👩‍👧‍👦 and 🏳️‍🌈 ZWJ",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i * 42); }",
    "Digits 0123456789, 3.14159, 1,000,000 and 2024-06-01T12:34:56Z",
    "   leading spaces, trailing spaces   ",
    "tabs\t\tand\t\nnewlines\n\n\n\r\nand mixed \n \n  \t end",
    "                                 many spaces",
    "\n\n\n\n\n",
    "Mixed 中文 and English with ١٢٣ Arabic digits and emoji 🚀 in one line.",
    # NFC-sensitive: decomposed e + combining acute, Hangul jamo, angstrom sign.
    "Cafe\u0301 re\u0301sume\u0301 \u1100\u1161\u11a8 \u212b \u00c5",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "<|vision_start|><|image_pad|><|vision_end|>Describe.<|vision_start|><|video_pad|><|vision_end|>",
    "text<|endoftext|>more text <|im_end|>",
    "<|im_start|<|im_end|>> partial <|im_start",
    "ſtraße ﬁ ｆｕｌｌｗｉｄｔｈ ①②③",
    "",
]


@pytest.fixture(scope="module")
def reader(fixtures: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf")


@pytest.fixture(scope="module")
def tokenizer(reader) -> Tokenizer:
    return Tokenizer.from_gguf(reader)


@pytest.fixture(scope="module")
def hf_tokenizer(fixtures: Path) -> tokenizers.Tokenizer:
    return tokenizers.Tokenizer.from_file(str(fixtures / "tokenizer" / "qwen2vl" / "tokenizer.json"))


def _reference_paths(fixtures: Path) -> list[Path]:
    paths = sorted((fixtures / "ref" / "qwen2vl-tiny").glob("*/*.npz"))
    assert paths, "no npz references found"
    return paths


def _stream(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    decoder = tokenizer.stream_decoder()
    return [decoder.feed(i) for i in ids] + [decoder.flush()]


# --- encode against HF --------------------------------------------------------------------------

@pytest.mark.parametrize("text", CORPUS)
def test_encode_matches_hf(tokenizer, hf_tokenizer, text):
    assert tokenizer.encode(text) == hf_tokenizer.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("text", CORPUS)
def test_decode_round_trips_to_nfc(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == unicodedata.normalize("NFC", text)


def test_digits_are_split_one_by_one(tokenizer):
    ids = tokenizer.encode("20240601")
    assert len(ids) == 8
    assert [tokenizer.decode([i]) for i in ids] == list("20240601")


def test_special_tokens_in_text_map_to_their_ids(tokenizer):
    for text in SPECIAL_TEXTS:
        assert tokenizer.encode(text) == [tokenizer.token_id(text)]
    assert tokenizer.encode("<|image_pad|><|image_pad|>") == [IMAGE_PAD_ID, IMAGE_PAD_ID]


_special_or_space = st.sampled_from(SPECIAL_TEXTS + [" ", "  ", "\n", "\r\n", "\t", "7", "'s", "e\u0301"])
_random_text = st.lists(st.one_of(st.text(max_size=12), _special_or_space), max_size=8).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_random_text)
def test_random_unicode_matches_hf(tokenizer, hf_tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids == hf_tokenizer.encode(text, add_special_tokens=False).ids
    assert "".join(_stream(tokenizer, ids)) == unicodedata.normalize("NFC", text)


# --- vocabulary accessors -------------------------------------------------------------------------

def test_metadata_from_gguf(tokenizer):
    assert tokenizer.vocab_size == 151936
    assert tokenizer.eos_id == tokenizer.token_id("<|im_end|>") == 151645
    assert tokenizer.pad_id == tokenizer.token_id("<|endoftext|>") == 151643
    assert "<|im_start|>" in tokenizer.chat_template


def test_token_id_of_unknown_text_is_a_clear_key_error(tokenizer):
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tokenizer.token_id("<|no_such_token|>")
    with pytest.raises(UnknownTokenError):
        tokenizer.token_id("")


def test_id_to_bytes_and_is_special(tokenizer):
    assert tokenizer.id_to_bytes(tokenizer.encode("Hello")[0]) == b"Hello"
    assert tokenizer.id_to_bytes(tokenizer.encode(" world")[0]) == b" world"
    assert tokenizer.id_to_bytes(198) == b"\n"
    assert tokenizer.id_to_bytes(151645) == b"<|im_end|>"
    assert tokenizer.is_special(151645) and tokenizer.is_special(IMAGE_PAD_ID)
    assert not tokenizer.is_special(tokenizer.encode("Hello")[0])
    # Every byte has its own token, whose bytes are that single byte.
    single_bytes = {tokenizer.id_to_bytes(i) for i in range(tokenizer.vocab_size)
                    if len(tokenizer.id_to_bytes(i)) == 1}
    assert single_bytes == {bytes([b]) for b in range(256)}


def test_id_to_bytes_agrees_with_hf_decode(tokenizer, hf_tokenizer):
    for token_id in range(0, 151643, 97):
        expected = hf_tokenizer.decode([token_id])
        got = tokenizer.id_to_bytes(token_id).decode("utf-8", errors="replace")
        assert got == expected, token_id


def test_decode_skips_special_tokens_on_request(tokenizer):
    ids = tokenizer.encode("<|im_start|>assistant\nHi there<|im_end|>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "assistant\nHi there"
    assert tokenizer.decode(ids) == "<|im_start|>assistant\nHi there<|im_end|>"


def test_decode_rejects_ids_outside_the_vocabulary(tokenizer):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.decode([1, tokenizer.vocab_size])
    with pytest.raises(ValueError):
        tokenizer.id_to_bytes(-1)


# --- streaming ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", CORPUS)
def test_stream_decoder_rebuilds_text_without_replacement_chars(tokenizer, text):
    pieces = _stream(tokenizer, tokenizer.encode(text))
    assert "".join(pieces) == unicodedata.normalize("NFC", text)
    assert not any("\ufffd" in piece for piece in pieces)


def test_stream_decoder_holds_back_a_split_character(tokenizer):
    ids = tokenizer.encode("🜁")
    assert len(ids) > 1, "the test needs a character split over several tokens"
    decoder = StreamDecoder(tokenizer)
    assert [decoder.feed(i) for i in ids[:-1]] == [""] * (len(ids) - 1)
    assert decoder.feed(ids[-1]) == "🜁"
    assert decoder.flush() == ""


def test_stream_decoder_flush_reports_an_unfinished_character_and_resets(tokenizer):
    ids = tokenizer.encode("🜁")
    decoder = tokenizer.stream_decoder()
    decoder.feed(ids[0])
    assert decoder.flush() == "\ufffd"
    assert decoder.feed(tokenizer.encode("ok")[0]) == "ok"


def test_stream_decoder_can_skip_special_tokens(tokenizer):
    decoder = tokenizer.stream_decoder(skip_special_tokens=True)
    ids = tokenizer.encode("Hi<|im_end|>")
    assert "".join(decoder.feed(i) for i in ids) == "Hi"


# --- golden references ----------------------------------------------------------------------------

def _collapse_pad_runs(ids: np.ndarray) -> list[int]:
    """One pad id per run: the npz input_ids hold the expanded media placeholders."""
    kept = []
    for token_id in ids.tolist():
        if token_id in (IMAGE_PAD_ID, VIDEO_PAD_ID) and kept and kept[-1] == token_id:
            continue
        kept.append(token_id)
    return kept


def test_reference_input_ids_equal_encoded_prompt(tokenizer, fixtures):
    for path in _reference_paths(fixtures):
        ref = np.load(path)
        encoded = tokenizer.encode(str(ref["prompt"]))
        if path.stem == "a_text":
            assert encoded == ref["input_ids"].tolist(), path
        else:
            assert encoded == _collapse_pad_runs(ref["input_ids"]), path


def test_reference_greedy_text_equals_decode(tokenizer, fixtures):
    for path in _reference_paths(fixtures):
        ref = np.load(path)
        ids = ref["greedy_tokens"].tolist()
        assert tokenizer.decode(ids) == str(ref["greedy_text"]), path
        assert "".join(_stream(tokenizer, ids)) == str(ref["greedy_text"]), path


# --- construction -----------------------------------------------------------------------------------

def _string_array(reader: gguf.GGUFReader, key: str) -> list[str]:
    field = reader.fields[key]
    return [field.parts[i].tobytes().decode() for i in field.data]


def test_user_defined_tokens_are_matched_but_not_special(reader):
    tokens = _string_array(reader, "tokenizer.ggml.tokens")
    merges = _string_array(reader, "tokenizer.ggml.merges")
    types = np.ones(len(tokens), dtype=np.int32)
    types[151643:151657] = 3
    types[151646] = TOKEN_TYPE_USER_DEFINED  # <|object_ref_start|>, like Qwen2.5's <tool_call>
    custom = Tokenizer.from_fields(tokens, types, merges, eos_id=151645, pad_id=None,
                                   chat_template=None)
    ids = custom.encode("a<|object_ref_start|>b<|im_end|>")
    assert ids[1] == 151646 and ids[-1] == 151645
    assert not custom.is_special(151646)
    assert custom.decode(ids, skip_special_tokens=True) == "a<|object_ref_start|>b"
    assert custom.chat_template is None and custom.pad_id is None


def test_from_fields_rejects_inconsistent_metadata():
    tokens = ["a", "b", "ab"]
    with pytest.raises(ModelFormatError, match="token types"):
        Tokenizer.from_fields(tokens, [1, 1], ["a b"], eos_id=0, pad_id=None, chat_template=None)
    with pytest.raises(ModelFormatError, match="merge"):
        Tokenizer.from_fields(tokens, [1, 1, 1], ["ab"], eos_id=0, pad_id=None, chat_template=None)
    with pytest.raises(ModelFormatError, match="eos"):
        Tokenizer.from_fields(tokens, [1, 1, 1], ["a b"], eos_id=3, pad_id=None, chat_template=None)
    with pytest.raises(ModelFormatError, match="duplicate"):
        Tokenizer.from_fields(["a", "a"], [1, 1], [], eos_id=0, pad_id=None, chat_template=None)


def _write_gguf(path: Path, *, model: str, with_merges: bool = True) -> gguf.GGUFReader:
    writer = gguf.GGUFWriter(path, "qwen2vl")
    writer.add_tokenizer_model(model)
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(["a", "b", "ab"])
    writer.add_token_types([1, 1, 1])
    if with_merges:
        writer.add_token_merges(["a b"])
    writer.add_eos_token_id(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return gguf.GGUFReader(path)


def test_from_gguf_reads_a_small_file(tmp_path):
    small = Tokenizer.from_gguf(_write_gguf(tmp_path / "ok.gguf", model="gpt2"))
    assert small.encode("abab") == [2, 2]
    assert small.pad_id is None and small.chat_template is None


def test_from_gguf_rejects_unsupported_or_incomplete_metadata(tmp_path):
    with pytest.raises(ModelFormatError, match="unsupported tokenizer model 'llama'"):
        Tokenizer.from_gguf(_write_gguf(tmp_path / "llama.gguf", model="llama"))
    with pytest.raises(ModelFormatError, match="tokenizer.ggml.merges"):
        Tokenizer.from_gguf(_write_gguf(tmp_path / "nomerges.gguf", model="gpt2", with_merges=False))


def test_merges_that_do_not_fit_the_vocabulary_name_the_file():
    """issue 16 item 3: the tokenizers library raises a bare Exception for a merge part outside the
    vocabulary, and panics (a PanicException, not even an Exception) for a merge result outside it."""
    tokens, types = ["a", "b", "ab"], [1, 1, 1]
    for merges, missing in ((["a c"], "'c'"), (["b a"], "'ba'")):
        with pytest.raises(ModelFormatError, match=f"model.gguf: BPE merge 0 .* needs the token {missing}"):
            Tokenizer.from_fields(tokens, types, merges, eos_id=0, pad_id=None, chat_template=None, source="model.gguf")
    with pytest.raises(ModelFormatError, match="model.gguf: malformed BPE merge"):
        Tokenizer.from_fields(tokens, types, ["ab"], eos_id=0, pad_id=None, chat_template=None, source="model.gguf")
