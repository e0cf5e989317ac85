"""M-RoPE positions against the HF references (exact integers)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from qvl_local.rope_index import expand_media_tokens, mrope_positions, positions_for_generated

IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END = 151655, 151656, 151652, 151653
TOKEN_IDS = dict(image_token_id=IMAGE_PAD, video_token_id=VIDEO_PAD, vision_start_token_id=VISION_START)


def test_token_ids_match_tokenizer(fixtures):
    tokenizer = json.loads((fixtures / "tokenizer" / "qwen2vl" / "tokenizer.json").read_text())
    ids = {token["content"]: token["id"] for token in tokenizer["added_tokens"]}
    assert ids["<|image_pad|>"] == IMAGE_PAD
    assert ids["<|video_pad|>"] == VIDEO_PAD
    assert ids["<|vision_start|>"] == VISION_START
    assert ids["<|vision_end|>"] == VISION_END


def _reference_cases(fixtures):
    cases = sorted((fixtures / "ref" / "qwen2vl-tiny").glob("*/*.npz"))
    assert len(cases) >= 10
    return cases


def test_every_reference_case_positions_exact(fixtures):
    for path in _reference_cases(fixtures):
        ref = np.load(path)
        positions, delta = mrope_positions(
            ref["input_ids"],
            image_grid_thw=ref["image_grid_thw"] if "image_grid_thw" in ref else None,
            video_grid_thw=ref["video_grid_thw"] if "video_grid_thw" in ref else None,
            **TOKEN_IDS,
        )
        assert positions.dtype == np.int64
        np.testing.assert_array_equal(positions, ref["position_ids"], err_msg=str(path))
        assert delta == int(ref["rope_delta"]), path
        n_prompt = len(ref["input_ids"])
        n_generated = ref["position_ids_with_generated"].shape[1] - n_prompt
        generated = positions_for_generated(delta, n_prompt, n_generated)
        np.testing.assert_array_equal(
            np.concatenate([positions, generated], axis=1), ref["position_ids_with_generated"], err_msg=str(path)
        )


def _collapse_media(ids: np.ndarray) -> np.ndarray:
    """The prompt as the tokenizer gives it: one pad per media."""
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ~(np.isin(ids[1:], (IMAGE_PAD, VIDEO_PAD)) & (ids[1:] == ids[:-1]))
    return ids[keep]


def test_expand_media_tokens_rebuilds_reference_ids(fixtures):
    for path in _reference_cases(fixtures):
        ref = np.load(path)
        collapsed = _collapse_media(ref["input_ids"])
        expanded = expand_media_tokens(
            collapsed,
            ref["image_grid_thw"] if "image_grid_thw" in ref else None,
            ref["video_grid_thw"] if "video_grid_thw" in ref else None,
            IMAGE_PAD,
            VIDEO_PAD,
        )
        np.testing.assert_array_equal(expanded, ref["input_ids"], err_msg=str(path))


def test_long_video_follows_original_rule_not_transformers_5(fixtures):
    check = json.loads((fixtures / "ref" / "mrope_positions_check.json").read_text())
    example = check["divergent_example"]["qwen2vl-tiny"]
    grid = np.array([[4, 4, 4]])
    positions, delta = mrope_positions(example["input_ids"], video_grid_thw=grid, **TOKEN_IDS)
    assert positions.tolist() == example["original_qwen_rule"]
    assert positions.tolist() != example["transformers_5_23"]
    assert delta == 10 + 1 - len(example["input_ids"])


def test_qwen25_time_scale_example(fixtures):
    check = json.loads((fixtures / "ref" / "mrope_positions_check.json").read_text())
    example = check["divergent_example"]["qwen25vl-tiny"]
    # second_per_grid_t 1.0 x tokens_per_second 2
    positions, _ = mrope_positions(
        example["input_ids"], video_grid_thw=np.array([[4, 4, 4]]), video_time_scale=[2.0], **TOKEN_IDS
    )
    assert positions.tolist() == example["original_qwen_rule"]


def test_text_only_is_arange():
    positions, delta = mrope_positions([5, 6, 7, 8], **TOKEN_IDS)
    assert positions.tolist() == [[0, 1, 2, 3]] * 3 and delta == 0
    empty, delta = mrope_positions([], **TOKEN_IDS)
    assert empty.shape == (3, 0) and delta == 0


def test_image_then_video_mixed_order():
    # text, image (1, 4, 6) -> 6 tokens, text, video (2, 2, 2) -> 2 tokens, text
    ids = [1, VISION_START] + [IMAGE_PAD] * 6 + [VISION_END, 2, VISION_START] + [VIDEO_PAD] * 2 + [VISION_END, 3]
    positions, delta = mrope_positions(
        ids, image_grid_thw=np.array([[1, 4, 6]]), video_grid_thw=np.array([[2, 2, 2]]), **TOKEN_IDS
    )
    assert positions[:, :2].tolist() == [[0, 1]] * 3
    assert positions[:, 2:8].tolist() == [[2] * 6, [2, 2, 2, 3, 3, 3], [2, 3, 4, 2, 3, 4]]
    assert positions[:, 8:11].tolist() == [[5, 6, 7]] * 3  # vision_end, text, vision_start
    assert positions[:, 11:13].tolist() == [[8, 9], [8, 8], [8, 8]]
    assert positions[:, 13:].tolist() == [[10, 11]] * 3
    assert delta == 12 - len(ids)


def test_mismatched_grids_raise():
    ids = [1, VISION_START, IMAGE_PAD, IMAGE_PAD, VISION_END]
    with pytest.raises(ValueError, match="1 image blocks but 0 image grids"):
        mrope_positions(ids, **TOKEN_IDS)
    with pytest.raises(ValueError, match="shorter than its grid"):
        mrope_positions(ids, image_grid_thw=np.array([[1, 4, 4]]), **TOKEN_IDS)
    with pytest.raises(ValueError, match="1 image grids but 0 pad tokens"):
        expand_media_tokens([1, 2], np.array([[1, 4, 4]]), None, IMAGE_PAD, VIDEO_PAD)
    with pytest.raises(ValueError, match="more video pad tokens than grids"):
        expand_media_tokens([VIDEO_PAD], None, None, IMAGE_PAD, VIDEO_PAD)


def test_positions_for_generated():
    assert positions_for_generated(-14, 50, 3).tolist() == [[36, 37, 38]] * 3
