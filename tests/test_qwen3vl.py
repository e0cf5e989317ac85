"""Qwen3-VL against the HF reference (fixtures/ref/qwen3vl-tiny): Qwen3 text blocks, interleaved M-RoPE,
16-pixel patches, the learned position grid, deepstack, timestamped video prompts.

Limits. The tiny Qwen3-VL's values are about twice Qwen2-VL's (last-position logit std 4.7-4.8 against
2.4; largest vision embedding 36-48 against 16), so Qwen2-VL's limits (tests/golden.py) apply in units of
that scale:
- exact logits: 2e-4 absolute as for Qwen2-VL (measured 3.2e-5 - 9.4e-5);
- exact embeddings and deepstack embeddings: 1e-4 x (max |reference| / 16), i.e. 2.3e-4 - 3.0e-4
  (measured 0.9e-4 - 1.4e-4, RMS relative 2.1e-6 - 2.5e-6 against the limit of 1e-5);
- fast logits: the median over 9 draws (the inputs, and 8 copies with the pixels perturbed by 1e-6
  relative: golden.check_fast_logits; one input's figure is one draw of the 8-bit rounding, and d_video's
  ranged 0.48-0.93 max abs, 0.110-0.190 RMS over 16 draws) within max abs 0.75, RMS 0.16: Qwen2-VL's
  limits (0.146 and 0.0292 sigma) times sqrt(3/2), for the three decoder layers on 8-bit activations
  where Qwen2-VL's tiny model runs two (a_text, no vision: 0.0254 sigma against 0.0192), at this
  model's logit std of 4.7-4.8 (0.85 and 0.17), held a little below that. Measured medians (avx512, avx2,
  scalar): 0.49-0.66 max abs, 0.111-0.146 RMS by case and ISA.
Greedy tokens must match exactly on both paths.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import qvl_local
from conftest import RecordingDecoder, write_lossless_video
from golden import (
    QWEN2_VL_EMBEDDING_MAX,
    check_embeddings,
    check_generate_from_media_files,
    check_exact_logits,
    check_fast_logits,
    check_teacher_forced_greedy,
    media_arrays,
    media_files,
)
from qvl_local import _core
from qvl_local.chat import render_chat
from qvl_local.decoding import prefill

CASES = ["a_text", "b_image", "c_2images", "d_video"]
VISION_CASES = ["b_image", "c_2images", "d_video"]
FAST_LOGITS_LIMITS = (0.75, 0.16)  # (max abs, RMS) of the median over golden.FAST_DRAWS draws, see above


def reference(fixtures: Path, case: str):
    return np.load(fixtures / f"ref/qwen3vl-tiny/q8_0/{case}.npz")


@pytest.fixture(scope="module")
def model(fixtures: Path) -> qvl_local.Model:
    return qvl_local.load(fixtures / "gguf/qwen3vl/qwen3vl-tiny-Q8_0.gguf", n_ctx=512, n_threads=2)


def vision_reference(ref) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pixels, grids, embeddings, deepstack embeddings [taps, tokens, hidden]) of a vision case."""
    kind = "image" if "image_embeds" in ref else "video"
    pixels = ref["pixel_values" if kind == "image" else "pixel_values_videos"]
    return pixels, ref[f"{kind}_grid_thw"], ref[f"{kind}_embeds"], ref[f"{kind}_deepstack_embeds"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_logits(model, fixtures, case, precision):
    ref = reference(fixtures, case)
    if precision == "fast":
        check_fast_logits(model, ref, FAST_LOGITS_LIMITS)
        return
    logits = model.forward(ref["input_ids"], precision=precision, **media_arrays(ref))
    assert logits.shape == (len(ref["input_ids"]), 151936)
    check_exact_logits(logits, ref)


@pytest.mark.parametrize("case", VISION_CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_vision_and_deepstack_embeddings(model, fixtures, case, precision):
    ref = reference(fixtures, case)
    pixels, grids, expected, expected_deepstack = vision_reference(ref)
    features = model._vision.encode_features(pixels, grids, precision=precision)
    assert features.shape == (len(expected), 1 + 2, 256)
    check_embeddings(features[:, 0], expected, precision, scale=np.abs(expected).max() / QWEN2_VL_EMBEDDING_MAX)
    for tap, tap_expected in enumerate(expected_deepstack):
        scale = np.abs(tap_expected).max() / QWEN2_VL_EMBEDDING_MAX
        check_embeddings(features[:, 1 + tap], tap_expected, precision, scale=scale)
    np.testing.assert_array_equal(model.encode_pixels(pixels, grids, precision=precision), features[:, 0])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_teacher_forced_greedy_steps(model, fixtures, case, precision):
    ref = reference(fixtures, case)
    features = None
    if "image_embeds" in ref or "video_embeds" in ref:
        pixels, grids, _, _ = vision_reference(ref)
        features = model._vision.encode_features(pixels, grids, precision=precision)
    check_teacher_forced_greedy(model, ref, precision, embeddings=features)


@pytest.mark.parametrize("case", CASES)
def test_prompt_from_media_files_is_the_references(model, fixtures, case):
    """Our preprocessing (16-pixel patches, mean/std 0.5, Qwen3-VL's pixel range) and prompt building
    (a video's frame pairs as blocks after their timestamps) give the reference's ids and positions."""
    ref = reference(fixtures, case)
    prepared = model.prepare_prompt(str(ref["prompt"]), **media_files(fixtures, ref))
    np.testing.assert_array_equal(prepared.ids, ref["input_ids"])
    np.testing.assert_array_equal(prepared.positions, ref["position_ids"])
    assert prepared.rope_delta == int(ref["rope_delta"])
    if "video_timestamps_text" in ref:
        text = model.detokenize(prepared.ids)
        assert [stamp for stamp in ref["video_timestamps_text"] if stamp in text] == list(ref["video_timestamps_text"])
    if "pixel_values" in ref:  # the same sizes; the pixels within the PIL-vs-torchvision resampling difference
        pixels = np.concatenate([span.media.pixel_values for span in prepared.media_spans])
        assert pixels.shape == ref["pixel_values"].shape and np.abs(pixels - ref["pixel_values"]).max() < 0.02


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_generate_from_media_files(model, fixtures, case, precision):
    ref = reference(fixtures, case)
    check_generate_from_media_files(model, fixtures, ref, precision)


def test_chat_uses_the_gguf_template(model, fixtures):
    """Qwen3-VL's template (from the GGUF) has no default system turn; chat() reproduces the reference."""
    ref = reference(fixtures, "b_image")
    messages = [{"role": "user", "content": [{"type": "image", "image": str(fixtures / "media/img_97x203.png")},
                                             {"type": "text", "text": str(ref["user_text"])}]}]
    assert model.tokenizer.chat_template == model.text_file.metadata["tokenizer.chat_template"]
    assert render_chat(messages, template=model.tokenizer.chat_template).prompt == str(ref["prompt"])
    assert model.chat(messages, max_new_tokens=8, precision="exact") == str(ref["greedy_text"])


def timestamps(model, prepared) -> list[str]:
    """The `<T seconds>` texts before the prompt's vision blocks, in order."""
    return re.findall(r"<([0-9.]+) seconds><\|vision_start\|>", model.detokenize(prepared.ids))


def test_video_timestamps_follow_the_frame_rate(model, fixtures):
    """Frame pair k is written as the mean time of its frames, frame i of a list at i / fps: at 1 fps 0.5 s and 2.5 s."""
    ref = reference(fixtures, "d_video")
    prepared = model.prepare_prompt(str(ref["prompt"]), **media_files(fixtures, ref), fps=1)
    assert timestamps(model, prepared) == ["0.5", "2.5"]
    assert len(prepared.media_spans) == 2  # one vision block per frame pair


def test_video_timestamps_of_an_odd_frame_list(model, fixtures):
    """HF pads a frame list's indices as its frames, with the last one again: 3 frames at 2 fps are at
    0, 0.5, 1.0 and 1.0 s, so the second pair is at 1.0 s, not 1.25 s."""
    ref = reference(fixtures, "d_video")
    frames = media_files(fixtures, ref)["videos"][0][:3]
    prepared = model.prepare_prompt(str(ref["prompt"]), videos=[frames], fps=2)
    assert timestamps(model, prepared) == ["0.2", "1.0"]


def test_video_file_timestamps_are_source_times(model, fixtures, tmp_path):
    """A file's timestamps are its sampled frames' indices over the SOURCE frame rate (HF's
    `_calculate_timestamps`): 20 frames at 10 fps sampled at 2 fps take frames 0, 6, 13 and 19, so the
    pairs are at (0 + 0.6) / 2 and (1.3 + 1.9) / 2 s, where i / sample_fps would give 0.25 and 1.25.
    The frames are resized to multiples of 32 in one step: qwen-vl-utils' default of 128 tokens per
    frame turns 84x112 into 320x448."""
    ref = reference(fixtures, "d_video")
    frame = np.asarray(Image.open(media_files(fixtures, ref)["videos"][0][0]).convert("RGB"))
    video = write_lossless_video(tmp_path / "clip.mkv", [frame] * 20, fps=10)
    prepared = model.prepare_prompt(str(ref["prompt"]), videos=[video], fps=2)
    assert timestamps(model, prepared) == ["0.3", "1.6"]
    assert model.preprocess_video(video, fps=2)[1].tolist() == [[2, 28, 20]]


def test_video_pixel_range_bounds_the_whole_video(model):
    """Qwen3-VL's video processor range (video_preprocessor_config: 4096 to 25165824 pixels) bounds
    all frames together: four 40x40 frames stay 32x32 (4 x 1024 >= 4096) where a per-frame floor would
    grow them; 40 frames of 1200x1200 shrink to 768x768 (40 x 768^2 <= 25165824) where our per-frame
    ceiling alone (1280 tokens) would keep 1120x1120."""
    pixels, grid = model.preprocess_video([np.zeros((40, 40, 3), np.uint8)] * 4)
    assert grid.tolist() == [[2, 2, 2]] and pixels.shape == (8, 1536)
    assert model.prompts.video_frame_size((40, 1200, 1200, 3), None, None) == (768, 768)
    assert model.prompts.video_frame_size((2, 1200, 1200, 3), None, None) == (1120, 1120)


def test_default_pixel_range(model):
    """Qwen3-VL's processor range (min 65536 pixels) under our ceiling of 1280 tokens of 32 x 32 pixels."""
    assert model.max_pixels == 1280 * 32 * 32
    pixels, grid = model.preprocess_image(np.zeros((10, 10, 3), np.uint8))
    assert grid.tolist() == [[1, 16, 16]]  # upscaled to 256 x 256 = 65536 pixels
    pixels, grid = model.preprocess_image(np.zeros((2000, 3000, 3), np.uint8))
    assert int(np.prod(grid)) // 4 <= 1280


# --- deepstack --------------------------------------------------------------------------------------

def decoder_trace(model, ref, features):
    ids = ref["input_ids"].astype(np.int32)
    rows = np.flatnonzero(ids == model.config.tokens.image_pad).astype(np.int32)
    model.reset()
    stages = model._decoder.trace(ids, np.ascontiguousarray(ref["position_ids"], dtype=np.int32),
                                  embeddings=features, embedded_rows=rows, precision="exact")
    model.reset()
    return stages, rows


def test_deepstack_tap_k_is_added_after_decoder_layer_k(model, fixtures):
    ref = reference(fixtures, "b_image")
    pixels, grids, _, _ = vision_reference(ref)
    features = model._vision.encode_features(pixels, grids, precision="exact")
    with_taps, rows = decoder_trace(model, ref, features)
    without_second = features.copy()
    without_second[:, 2] = 0
    first_only, _ = decoder_trace(model, ref, without_second)
    # Tap 0 joins after layer 0 in both runs; tap 1 after layer 1, so there and only at the image's rows
    # the hidden states differ, by tap 1 itself.
    np.testing.assert_array_equal(first_only["block.0"], with_taps["block.0"])
    difference = with_taps["block.1"] - first_only["block.1"]
    np.testing.assert_allclose(difference[rows], features[:, 2], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.delete(difference, rows, axis=0), 0)
    assert np.abs(with_taps["logits"][-1] - first_only["logits"][-1]).max() > 1e-2


def test_image_rows_need_their_deepstack_features(model, fixtures):
    ref = reference(fixtures, "b_image")
    pixels, grids, _, _ = vision_reference(ref)
    features = model._vision.encode_features(pixels, grids, precision="exact")
    with pytest.raises(ValueError, match="2 deepstack features"):
        decoder_trace(model, ref, np.ascontiguousarray(features[:, 0]))


@pytest.mark.parametrize("cached", ["whole prompt", "half the image"])
def test_a_cached_image_prefix_keeps_its_deepstack(model, fixtures, cached):
    """A prompt that continues a cached one runs only its new rows, and the cached image rows carry their
    deepstack effect: the logits equal a fresh run's (also when the cache ends inside the image)."""
    ref = reference(fixtures, "b_image")
    first = model.prepare_prompt(str(ref["prompt"]), images=[fixtures / "media" / ref["image_files"][0]])
    longer = model.prepare_prompt(str(ref["prompt"]) + "Yes.<|im_end|>\n<|im_start|>user\nAnd?<|im_end|>\n",
                                  images=[fixtures / "media" / ref["image_files"][0]])
    model.reset()
    expected = prefill(model._decoder, model._cache, longer, "exact", model._encode_media)
    model.reset()
    prefill(model._decoder, model._cache, first, "exact", model._encode_media)
    if cached == "half the image":
        span = first.media_spans[0]
        middle = span.first + span.media.tokens // 2
        model._decoder.truncate(middle)
        model._cache.truncate(middle)
    recording = RecordingDecoder(model._decoder)
    logits = prefill(recording, model._cache, longer, "exact", model._encode_media)
    model.reset()
    assert recording.forward_sizes == [len(longer) - (len(first) if cached == "whole prompt" else middle)]
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


# --- the learned position grid ------------------------------------------------------------------------

def hf_position_embedding(table: np.ndarray, grids, merge: int = 2) -> np.ndarray:
    """transformers' Qwen3VLVisionModel.fast_pos_embed_interpolate, transcribed to numpy (float32 like
    torch): bilinear weights of the four neighbouring grid entries, then each image's rows repeated per
    frame and permuted into merge order."""
    side = int(round(len(table) ** 0.5))
    out = []
    for t, h, w in grids:
        def linspace(n):  # torch.linspace in float32: the symmetric formula
            step = np.float32(side - 1) / np.float32(n - 1) if n > 1 else np.float32(0)
            i = np.arange(n)
            return np.where(i < n // 2, step * i.astype(np.float32),
                            np.float32(side - 1) - step * (n - 1 - i).astype(np.float32)).astype(np.float32)
        hs, ws = linspace(h), linspace(w)
        h0, w0 = hs.astype(np.int64), ws.astype(np.int64)
        h1, w1 = np.minimum(h0 + 1, side - 1), np.minimum(w0 + 1, side - 1)
        dh, dw = (hs - h0).astype(np.float32), (ws - w0).astype(np.float32)
        corners = [(h0[:, None] * side + w0[None]), (h0[:, None] * side + w1[None]),
                   (h1[:, None] * side + w0[None]), (h1[:, None] * side + w1[None])]
        weights = [(1 - dh)[:, None] * (1 - dw)[None], (1 - dh)[:, None] * dw[None],
                   dh[:, None] * (1 - dw)[None], dh[:, None] * dw[None]]
        summed = sum(table[c.reshape(-1)] * wt.reshape(-1, 1).astype(np.float32) for c, wt in zip(corners, weights))
        summed = np.tile(summed, (t, 1)).reshape(t, h // merge, merge, w // merge, merge, -1)
        out.append(summed.transpose(0, 1, 3, 2, 4, 5).reshape(t * h * w, -1))
    return np.concatenate(out)


@pytest.mark.parametrize("grids", [[[1, 10, 14]], [[2, 6, 4], [1, 2, 2]], [[1, 48, 48]], [[1, 98, 26]]])
def test_position_grid_interpolation_matches_hf(grids):
    table = np.random.default_rng(0).standard_normal((48 * 48, 8)).astype(np.float32)
    ours = _core.position_embedding(table, np.array(grids, dtype=np.int64), 2)
    np.testing.assert_allclose(ours, hf_position_embedding(table, grids), rtol=0, atol=1e-5)
    if grids == [[1, 48, 48]]:  # the grid's own size samples every entry exactly, in merge order
        np.testing.assert_array_equal(ours, hf_position_embedding(table, grids))


def test_patch_embeddings_carry_the_interpolated_positions(model, fixtures):
    """In the model: block 0's input is the Conv3D (with its bias) plus the file's grid interpolated to a
    24 x 12 image (not square, not 48 x 48)."""
    ref = reference(fixtures, "b_image")
    pixels, grids, _, _ = vision_reference(ref)
    assert grids.tolist() == [[1, 24, 12]]
    stages = model._vision.trace(pixels, grids, precision="exact")
    file = model.mmproj_file

    def tensor(name):
        info = file.tensor(name)
        dtype = np.float16 if info.type_name == "F16" else np.float32
        return np.frombuffer(file.tensor_bytes(name), dtype=dtype).astype(np.float32).reshape(info.shape[::-1])

    kernel = np.stack([tensor("v.patch_embd.weight"), tensor("v.patch_embd.weight.1")], axis=2)  # [out][c][t][p][p]
    conv = pixels @ kernel.reshape(len(kernel), -1).T + tensor("v.patch_embd.bias")
    positions = hf_position_embedding(tensor("v.position_embd.weight"), grids.tolist())
    np.testing.assert_allclose(stages["patch_embed"], conv + positions, rtol=0, atol=1e-4)


def test_trace_holds_the_deepstack_embeddings(model, fixtures):
    ref = reference(fixtures, "d_video")
    arrays = media_arrays(ref)
    stages = model.trace(ref["input_ids"], precision="exact", **arrays)
    _, _, expected, expected_deepstack = vision_reference(ref)
    scale = np.abs(expected_deepstack).max() / QWEN2_VL_EMBEDDING_MAX
    for tap in range(2):
        check_embeddings(stages[f"video.deepstack.{tap}"], expected_deepstack[tap], "exact", scale=scale)
    np.testing.assert_array_equal(stages["video.merger"], model.encode_pixels(*list(arrays.values())[:2], precision="exact"))
    np.testing.assert_array_equal(stages["text.logits"], model.forward(ref["input_ids"], precision="exact", **arrays))
