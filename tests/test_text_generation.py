"""Decoding behaviour of the loaded model: batching, the KV cache, context limits, sampling, streaming."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qvl_local
from qvl_local.errors import ContextLengthError
from qvl_local.generation import GenerationConfig
from conftest import RecordingDecoder

PROMPT_CASE = "ref/qwen2vl-tiny/q8_0/a_text.npz"


@pytest.fixture(scope="module")
def model(fixtures: Path) -> qvl_local.Model:
    return qvl_local.load(fixtures / "gguf/qwen2vl-tiny-Q8_0.gguf", mmproj=fixtures / "gguf/mmproj-qwen2vl-tiny-F16.gguf",
                          n_ctx=256, n_batch=7)


@pytest.fixture(scope="module")
def ref(fixtures: Path):
    return np.load(fixtures / PROMPT_CASE)


@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_batch_chunks_and_single_tokens_agree(model, ref, precision) -> None:
    """One call (chunked internally by n_batch=7), and one token per call, give the same logits."""
    ids = ref["input_ids"].astype(np.int32)
    positions = ref["position_ids"].astype(np.int32)
    decoder = model._decoder
    model.reset()
    together = decoder.forward(ids, positions, logits="all", precision=precision)
    model.reset()
    one_by_one = np.stack([
        decoder.forward(ids[i:i + 1], np.ascontiguousarray(positions[:, i:i + 1]), precision=precision)
        for i in range(len(ids))
    ])
    model.reset()
    # Exact: the same float arithmetic in another order. Fast: a row's activations are quantized on their own either way.
    np.testing.assert_allclose(one_by_one, together, rtol=0, atol=1e-4)
    np.testing.assert_allclose(together[-1], ref["logits_last"], rtol=0, atol=2e-4 if precision == "exact" else 0.35)


def test_context_overflow_is_a_clear_error(model, ref) -> None:
    model.reset()
    too_long = np.zeros(model.n_ctx + 1, dtype=np.int32)
    with pytest.raises(ValueError, match="context is full"):
        model._decoder.forward(too_long, np.zeros((3, len(too_long)), np.int32))
    assert model._decoder.n_past == 0  # a failed call leaves the cache as it was
    with pytest.raises(ValueError, match="more than the context"):
        model.generate("hello " * 300)


def test_token_ids_are_checked(model) -> None:
    model.reset()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model._decoder.forward(np.array([1, 10**7], np.int32), np.zeros((3, 2), np.int32))
    assert model._decoder.n_past == 0


def test_generation_stops_at_max_tokens_and_streams_the_same_text(model, ref) -> None:
    prompt = str(ref["prompt"])
    result = model.generate(prompt, max_new_tokens=8, precision="exact")
    assert result.token_ids == ref["greedy_tokens"].tolist() and result.finish_reason == "length"
    chunks = list(model.generate(prompt, max_new_tokens=8, precision="exact", stream=True))
    assert [token for _, token in chunks] == result.token_ids
    assert "".join(text for text, _ in chunks) == result.text


def test_stop_string_cuts_exactly(model, ref) -> None:
    text = str(ref["greedy_text"])
    stop = text[5:9]
    result = model.generate(str(ref["prompt"]), max_new_tokens=8, precision="exact", stop=[stop])
    assert result.text == text[: text.index(stop)]
    assert result.finish_reason == "stop"


def test_seeded_sampling_is_reproducible(model, ref) -> None:
    config = GenerationConfig(max_new_tokens=6, temperature=1.5, top_k=50, seed=1234)
    first = model.generate(str(ref["prompt"]), config=config)
    second = model.generate(str(ref["prompt"]), config=config)
    other = model.generate(str(ref["prompt"]), config=GenerationConfig(max_new_tokens=6, temperature=1.5, top_k=50, seed=99))
    assert first.token_ids == second.token_ids
    assert first.token_ids != other.token_ids


def test_follow_up_question_reuses_the_cached_image_and_turns(model, fixtures, monkeypatch) -> None:
    image = str(fixtures / "media/img_97x203.png")
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "What is this?"}]}]
    recorder = RecordingDecoder(model._decoder)
    monkeypatch.setattr(model, "_decoder", recorder)
    encodes = []
    real_encode = model._vision_features  # what the prompt path encodes through (embeddings + deepstack)
    monkeypatch.setattr(model, "_vision_features", lambda *a, **k: encodes.append(1) or real_encode(*a, **k))
    model.reset()

    answer = model.chat(messages, max_new_tokens=4, precision="exact")
    first_prompt = recorder.forward_sizes[0]
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And the colors?"}]
    recorder.forward_sizes.clear()
    follow_up = model.chat(messages, max_new_tokens=4, precision="exact")

    assert len(encodes) == 1, "the image was encoded again"
    assert recorder.forward_sizes[0] < 20 < first_prompt, recorder.forward_sizes  # only the new turn ran
    model.reset()
    assert model.chat(messages, max_new_tokens=4, precision="exact") == follow_up  # same answer from scratch


def test_per_image_settings_in_chat_parts(model, fixtures) -> None:
    """qwen-vl-utils style per-item settings: an exact resize on one image, a pixel budget on another."""
    image = str(fixtures / "media/img_300x120.png")
    prepared = model.prepare_prompt(
        "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>",
        images=[{"image": image, "resized_height": 56, "resized_width": 112}, {"image": image, "max_pixels": 28 * 28 * 4}])
    grids = [media.grid_thw[0].tolist() for _, media, _ in prepared.media_spans]
    assert grids == [[1, 4, 8], [1, 2, 6]]  # 300x120 within 3136 pixels: 84x28
    messages = [{"role": "user", "content": [{"type": "image", "image": image, "resized_height": 56, "resized_width": 112},
                                             {"type": "text", "text": "Describe."}]}]
    with_settings = model.chat(messages, max_new_tokens=3, precision="exact")
    pixels, grid = model.preprocess_image(image, resized_height=56, resized_width=112)
    assert grid[0].tolist() == [1, 4, 8] and isinstance(with_settings, str)
    with pytest.raises(ValueError, match="unknown image settings"):
        model.prepare_prompt("<|vision_start|><|image_pad|><|vision_end|>", images=[{"image": image, "fps": 2}])


def test_large_images_default_to_a_cpu_sized_budget(model) -> None:
    """A 12-megapixel photo stays within 1280 tokens unless HF's own ceiling is asked for."""
    photo = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    _, grid = model.preprocess_image(photo)
    assert grid[0].tolist() == [1, 60, 82]  # 840 x 1148, as the reference's max_pixels=1280*28*28 setting gives
    assert grid[0, 1] * grid[0, 2] // 4 <= 1280
    _, hf_grid = model.preprocess_image(photo, max_pixels=12845056)
    assert hf_grid[0].tolist() == [1, 214, 286]  # HF's 2996 x 4004, as in the preprocessing reference


def test_every_isa_gives_the_reference_logits(model, ref) -> None:
    """The decoder's own vector code (attention, activations) against the scalar reference path."""
    from qvl_local import ops

    ids, positions = ref["input_ids"].astype(np.int32), ref["position_ids"].astype(np.int32)
    chosen = ops.active_isa()
    try:
        for isa in ops.available_isas():
            ops.set_isa(isa)
            model.reset()
            logits = model._decoder.forward(ids, positions, logits="all", precision="exact")
            np.testing.assert_allclose(logits, ref["logits_all"], rtol=0, atol=2e-4, err_msg=isa)
    finally:
        ops.set_isa(chosen)
        model.reset()



class LogitsRecorder:
    """Stands in for a model's decoder, passing every call through and keeping the logits it returned."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.logits: list[np.ndarray] = []

    def forward(self, *args, **kwargs):
        logits = self.decoder.forward(*args, **kwargs)
        self.logits.append(np.array(logits))
        return logits

    def __getattr__(self, name):
        return getattr(self.decoder, name)


def _chat_logits(model: qvl_local.Model, monkeypatch, messages, **generation) -> tuple[str, list[np.ndarray]]:
    """The answer and the logits of every decoder call it made."""
    recorder = LogitsRecorder(model._decoder)
    with monkeypatch.context() as patch:
        patch.setattr(model, "_decoder", recorder)
        answer = model.chat(messages, **generation)
    return answer, recorder.logits


def test_exact_never_reuses_a_prefix_computed_at_another_precision(model, fixtures, monkeypatch) -> None:
    """issue 16 item 2: the KV prefix is kept per precision, so "exact" does not depend on the calls before it."""
    image = str(fixtures / "media/img_97x203.png")
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "What is this?"}]}]
    fresh = qvl_local.load(fixtures / "gguf/qwen2vl-tiny-Q8_0.gguf", mmproj=fixtures / "gguf/mmproj-qwen2vl-tiny-F16.gguf",
                           n_ctx=256, n_batch=7)
    expected, expected_logits = _chat_logits(fresh, monkeypatch, messages, max_new_tokens=4, precision="exact")
    model.reset()
    model.chat(messages, max_new_tokens=4, precision="int8")
    answer, logits = _chat_logits(model, monkeypatch, messages, max_new_tokens=4, precision="exact")
    assert answer == expected
    assert len(logits) == len(expected_logits)
    for step, (got, want) in enumerate(zip(logits, expected_logits)):
        np.testing.assert_array_equal(got, want, err_msg=f"decoder call {step}")


def test_forward_and_generate_place_the_media_alike(model, fixtures, monkeypatch) -> None:
    """One layout of the vision rows: forward on a prepared prompt's ids and pixels gives the logits
    that generate's prefill gives for the same prompt."""
    images = [str(fixtures / "media/img_97x203.png"), str(fixtures / "media/img_56x56.png")]
    prompt = ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>and"
              "<|vision_start|><|image_pad|><|vision_end|>Compare.<|im_end|>\n<|im_start|>assistant\n")
    prepared = model.prepare_prompt(prompt, images)
    pixels = np.concatenate([span.media.pixel_values for span in prepared.media_spans])
    grids = np.concatenate([span.media.grid_thw for span in prepared.media_spans])
    logits = model.forward(prepared.ids, pixel_values=pixels, image_grid_thw=grids, precision="exact")
    recorder = LogitsRecorder(model._decoder)
    monkeypatch.setattr(model, "_decoder", recorder)
    model.reset()
    model.generate(prepared, max_new_tokens=1, precision="exact")
    np.testing.assert_allclose(recorder.logits[0], logits[-1], rtol=0, atol=1e-5)


def test_text_that_cannot_fit_is_refused_before_tokenizing(model, monkeypatch) -> None:
    """issue 16 item 1: a token holds at most max_token_bytes bytes, so a long enough text cannot fit
    the context whatever it says; it is refused without being tokenized."""
    too_long = "x" * (model.tokenizer.max_text_bytes(model.n_ctx) + 1)
    monkeypatch.setattr(model.tokenizer, "encode", lambda text: pytest.fail("the text was tokenized"))
    with pytest.raises(ContextLengthError, match="more than the context"):
        model.generate(too_long)
    with pytest.raises(ContextLengthError):
        model.chat([{"role": "user", "content": too_long}])
