"""What the golden tests of every model family share: the reference cases of `fixtures/ref` as
arguments for Model.forward / Model.generate, and the limits every family is held to.

The limits are those tests/test_model_golden.py states and explains for Qwen2-VL (the fixture README
gives the same expectations for Qwen2.5-VL and Qwen3-VL: HF float32 on the GGUF's own weights).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

EXACT_LOGITS_ATOL = 2e-4
EXACT_EMBEDDING_ATOL = 1e-4
FAST_LOGITS_LIMITS = {"q8_0": (0.35, 0.07), "q4_k_m": (0.45, 0.10)}  # (max abs, RMS)
# Vision embeddings (tests/test_vision.py): exact RMS relative, fast RMS relative, fast max of max |reference|.
EXACT_EMBEDDING_RMS_RELATIVE = 1e-5
FAST_EMBEDDING_RMS_RELATIVE = 1e-3
FAST_EMBEDDING_MAX_RELATIVE = 5e-3
# The scale the absolute limits above were set at: Qwen2-VL's tiny model (last-position logit std 2.4,
# largest vision embedding 16). A model whose values are larger is held to the same limits relative to
# its own scale (`scale` below: its value over these).
QWEN2_VL_LOGIT_STD = 2.4
QWEN2_VL_EMBEDDING_MAX = 16.0


def media_arrays(ref) -> dict:
    """The reference's processor arrays, as Model.forward takes them."""
    if "pixel_values" in ref:
        return {"pixel_values": ref["pixel_values"], "image_grid_thw": ref["image_grid_thw"]}
    if "pixel_values_videos" in ref:
        arrays = {"pixel_values_videos": ref["pixel_values_videos"], "video_grid_thw": ref["video_grid_thw"]}
        if "second_per_grid_ts" in ref:
            arrays["second_per_grid_ts"] = ref["second_per_grid_ts"]
        return arrays
    return {}


def media_files(fixtures: Path, ref) -> dict:
    """The reference's media files, as Model.generate takes them (a video as its list of frames)."""
    if "image_files" in ref:
        return {"images": [fixtures / "media" / name for name in ref["image_files"]]}
    if "video_files" in ref:
        return {"videos": [[fixtures / "media" / name for name in ref["video_files"]]]}
    return {}


def check_generate_from_media_files(model, fixtures: Path, ref, precision: str) -> None:
    """The whole path: the prompt text and the media files through our preprocessing and prompt
    building, the reference's 8 greedy tokens out."""
    from qvl_local.generation import GenerationConfig

    result = model.generate(str(ref["prompt"]), config=GenerationConfig(max_new_tokens=8), precision=precision,
                            **media_files(fixtures, ref))
    assert result.prompt_tokens == len(ref["input_ids"])
    assert result.token_ids == ref["greedy_tokens"].tolist()
    assert result.text == str(ref["greedy_text"])
    assert result.finish_reason == "length"


def rms_relative(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - expected) ** 2) / np.mean(expected**2)))


# The fast path's logit error is checked as the median of this many draws of its rounding.
FAST_DRAWS = 9


def perturbed_media(media: dict, draws: int, relative: float = 1e-6, seed: int = 0) -> list[dict]:
    """`media` itself, then draws - 1 copies whose pixel arrays are scaled by 1 + relative * N(0, 1) per
    value (just `media` when it holds no pixels: there is nothing to perturb). The fast path's error on
    one input is one draw of its 8-bit rounding: a 1e-6 change of the pixels moves the true logits by far
    less than that error, yet re-rounds the activations (on the tiny Qwen3-VL's d_video, 16 such draws
    gave max abs 0.48-0.93, RMS 0.110-0.190). A limit on the median of several draws tests the
    arithmetic, not the luck of one rounding."""
    keys = [key for key in media if key.startswith("pixel_values")]
    if not keys:
        return [media]
    rng = np.random.default_rng(seed)
    copies = [media]
    for _ in range(draws - 1):
        copy = dict(media)
        for key in keys:
            noise = 1.0 + relative * rng.standard_normal(media[key].shape)
            copy[key] = (media[key] * noise).astype(media[key].dtype)
        copies.append(copy)
    return copies


def check_exact_logits(logits: np.ndarray, ref) -> None:
    """The last position's logits (and every position's where the reference has them) within 2e-4."""
    np.testing.assert_allclose(logits[-1], ref["logits_last"], rtol=0, atol=EXACT_LOGITS_ATOL)
    if "logits_all" in ref:
        np.testing.assert_allclose(logits, ref["logits_all"], rtol=0, atol=EXACT_LOGITS_ATOL)


def check_fast_logits(model, ref, limits: tuple[float, float], draws: int = FAST_DRAWS) -> None:
    """The fast path's error against the reference as the median over `draws` draws (perturbed_media) of
    the last position's max abs and RMS, and of the RMS over every position where the reference has
    them, within `limits` (max abs, RMS)."""
    errors = []
    for media in perturbed_media(media_arrays(ref), draws):
        logits = model.forward(ref["input_ids"], precision="fast", **media)
        assert logits.shape == (len(ref["input_ids"]), model.config.text.vocab_size)
        last = logits[-1] - ref["logits_last"]
        every = np.sqrt(np.mean((logits - ref["logits_all"]) ** 2)) if "logits_all" in ref else 0.0
        errors.append((np.abs(last).max(), np.sqrt(np.mean(last**2)), every))
    max_abs, rms, every_rms = np.median(np.array(errors), axis=0)
    assert max_abs < limits[0] and rms < limits[1] and every_rms < limits[1], errors


def check_embeddings(embeddings: np.ndarray, expected: np.ndarray, precision: str, scale: float = 1.0) -> None:
    """Within the precision's limits; `scale` multiplies the absolute one (see QWEN2_VL_EMBEDDING_MAX)."""
    assert embeddings.shape == expected.shape
    if precision == "exact":
        np.testing.assert_allclose(embeddings, expected, rtol=0, atol=EXACT_EMBEDDING_ATOL * scale)
        assert rms_relative(embeddings, expected) < EXACT_EMBEDDING_RMS_RELATIVE
    else:
        assert rms_relative(embeddings, expected) < FAST_EMBEDDING_RMS_RELATIVE
        assert np.abs(embeddings - expected).max() < FAST_EMBEDDING_MAX_RELATIVE * np.abs(expected).max()


def check_teacher_forced_greedy(model, ref, precision: str, *, embeddings=None) -> None:
    """Each reference greedy token is the model's argmax when the earlier ones are fed in, through the
    KV cache: the prompt's rows replaced by `embeddings` at the pad tokens (with their deepstack
    features where the model has them: VisionModel.encode_features)."""
    decoder = model._decoder
    ids = ref["input_ids"].astype(np.int32)
    positions = ref["position_ids_with_generated"].astype(np.int32)
    rows = None
    if embeddings is not None:
        tokens = model.config.tokens
        rows = np.flatnonzero((ids == tokens.image_pad) | (ids == tokens.video_pad)).astype(np.int32)
    model.reset()
    logits = decoder.forward(ids, np.ascontiguousarray(positions[:, : len(ids)]), embeddings=embeddings,
                             embedded_rows=rows, precision=precision)
    for step, token in enumerate(ref["greedy_tokens"]):
        top5 = ref["greedy_top5_ids"][step]
        assert int(np.argmax(logits)) == token, f"step {step}: reference top5 {top5.tolist()}"
        where = len(ids) + step
        logits = decoder.forward(np.array([token], np.int32), np.ascontiguousarray(positions[:, where:where + 1]),
                                 precision=precision)
    model.reset()
