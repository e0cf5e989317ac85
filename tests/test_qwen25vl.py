"""Qwen2.5-VL against the HF reference (fixtures/ref/qwen25vl-tiny), in both file layouts.

llama.cpp's pair (text `qwen2vl` + mmproj `qwen2.5vl_merger`) and Ollama's single file (`qwen25vl`,
built here from the pair by the fixture tool, the same weights byte for byte) must give the same
logits bit for bit and meet the Qwen2-VL limits (tests/golden.py). Measured on this machine: exact
logits within 2.7e-5, embeddings within 3.2e-5; fast logits max 0.22-0.29 / RMS 0.047-0.062 (held as
the median of 9 draws of the rounding, golden.check_fast_logits; over 16 draws on avx512 the medians
were 0.23-0.26 / 0.049-0.056, the worst draw 0.31 / 0.063).
The int8 precision (the F16 projector's weights rounded to Q8_0 on the fly) is 2.8-3.2% RMS off in
the embeddings here (one more rounded matrix per block than Qwen2-VL's MLP: 1.8-2.0% there), enough
to turn c_2images' greedy step 4 (margin 0.48): its embeddings are held to their own envelope below,
its tokens are not.
The window layout is checked against a direct transcription of HF's get_window_index.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qvl_local
from golden import (
    FAST_LOGITS_LIMITS,
    check_embeddings,
    check_exact_logits,
    check_fast_logits,
    check_generate_from_media_files,
    check_teacher_forced_greedy,
    media_arrays,
    media_files,
)
from qvl_local import _core
from qvl_local.config import vision_spec

CASES = ["a_text", "b_image", "c_2images", "d_video"]
LAYOUTS = ["llama.cpp", "ollama"]
TEXT = "gguf/qwen25vl/qwen25vl-tiny-Q8_0.gguf"


def reference(fixtures: Path, case: str):
    return np.load(fixtures / f"ref/qwen25vl-tiny/q8_0/{case}.npz")


@pytest.fixture(scope="module")
def pair_model(fixtures: Path) -> qvl_local.Model:
    return qvl_local.load(fixtures / TEXT, n_ctx=256, n_threads=2)  # finds the mmproj beside it


@pytest.fixture(scope="module")
def single_model(ollama_file: Path) -> qvl_local.Model:
    return qvl_local.load(ollama_file, n_ctx=256, n_threads=2)  # no mmproj: vision is in the file


@pytest.fixture(scope="module", params=LAYOUTS)
def model(request, pair_model, single_model) -> qvl_local.Model:
    return pair_model if request.param == "llama.cpp" else single_model


def test_layouts_load_the_same_model(pair_model, single_model):
    assert pair_model.mmproj_file.path.name == "mmproj-qwen25vl-tiny-F16.gguf"
    assert single_model.mmproj_file is single_model.text_file
    assert single_model.config.text == pair_model.config.text
    vision, single_vision = pair_model.config.vision, single_model.config.vision
    assert single_vision.tensor_names != vision.tensor_names  # Ollama names its vision tensors its own way
    assert single_vision.__class__(**{**single_vision.__dict__, "tensor_names": vision.tensor_names}) == vision
    assert vision.variant.name == "qwen2.5-vl" and vision.full_attention_layers == (1, 3) and vision.window_size == 112


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_logits(model, fixtures, case, precision):
    ref = reference(fixtures, case)
    if precision == "fast":
        check_fast_logits(model, ref, FAST_LOGITS_LIMITS["q8_0"])
        return
    logits = model.forward(ref["input_ids"], precision=precision, **media_arrays(ref))
    assert logits.shape == (len(ref["input_ids"]), 151936)
    check_exact_logits(logits, ref)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_both_layouts_give_identical_logits(pair_model, single_model, fixtures, case, precision):
    ref = reference(fixtures, case)
    arrays = media_arrays(ref)
    np.testing.assert_array_equal(single_model.forward(ref["input_ids"], precision=precision, **arrays),
                                  pair_model.forward(ref["input_ids"], precision=precision, **arrays))


@pytest.mark.parametrize("case", ["b_image", "c_2images", "d_video"])
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_vision_embeddings(model, fixtures, case, precision):
    ref = reference(fixtures, case)
    pixels, grids = list(media_arrays(ref).values())[:2]
    expected = ref["image_embeds"] if "image_embeds" in ref else ref["video_embeds"]
    check_embeddings(model.encode_pixels(pixels, grids, precision=precision), expected, precision)


INT8_RMS_RELATIVE = 4e-2
INT8_MAX_RELATIVE = 5e-2  # of max |reference|


@pytest.mark.parametrize("case", ["b_image", "c_2images", "d_video"])
def test_int8_vision_embeddings_stay_within_their_envelope(model, fixtures, case):
    ref = reference(fixtures, case)
    pixels, grids = list(media_arrays(ref).values())[:2]
    expected = ref["image_embeds"] if "image_embeds" in ref else ref["video_embeds"]
    embeddings = model.encode_pixels(pixels, grids, precision="int8")
    error = embeddings - expected
    assert 1e-3 < np.sqrt(np.mean(error**2) / np.mean(expected**2)) < INT8_RMS_RELATIVE
    assert np.abs(error).max() < INT8_MAX_RELATIVE * np.abs(expected).max()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_teacher_forced_greedy_steps(model, fixtures, case, precision):
    ref = reference(fixtures, case)
    arrays = media_arrays(ref)
    embeddings = model.encode_pixels(*list(arrays.values())[:2], precision=precision) if arrays else None
    check_teacher_forced_greedy(model, ref, precision, embeddings=embeddings)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_generate_from_media_files(model, fixtures, case, precision):
    """The whole path: prompt and media files through our preprocessing, the 8 greedy tokens out.
    The video's frames come at the default 2 fps, so its T positions are 2 apart as in the reference."""
    ref = reference(fixtures, case)
    check_generate_from_media_files(model, fixtures, ref, precision)


def test_prompt_positions_follow_the_video_time(model, fixtures):
    """Qwen2.5-VL's video T positions are t x second_per_grid_t x 2: 2 apart at 2 fps, 4 apart at 1 fps."""
    ref = reference(fixtures, "d_video")
    frames = media_files(fixtures, ref)["videos"]
    at_2fps = model.prepare_prompt(str(ref["prompt"]), videos=frames, fps=2)
    np.testing.assert_array_equal(at_2fps.positions, ref["position_ids"])
    at_1fps = model.prepare_prompt(str(ref["prompt"]), videos=frames, fps=1)
    video = at_1fps.ids == model.config.tokens.video_pad
    t = at_1fps.positions[0][video]
    assert sorted(set(t - t.min())) == [0, 4]
    np.testing.assert_array_equal(at_1fps.positions[1:, video], at_2fps.positions[1:, video])


def test_chat_without_a_template_in_the_file_uses_the_built_in_one(fixtures, ollama_file_without_template):
    model = qvl_local.load(ollama_file_without_template, n_ctx=256, n_threads=2)
    assert "tokenizer.chat_template" not in model.text_file.metadata
    ref = reference(fixtures, "b_image")
    messages = [{"role": "user", "content": [{"type": "image", "image": str(fixtures / "media/img_97x203.png")},
                                             {"type": "text", "text": str(ref["user_text"])}]}]
    assert model.chat(messages, max_new_tokens=8, precision="exact") == str(ref["greedy_text"])


def test_qwen25_added_tokens(model, fixtures):
    """The 8 tokens Qwen2.5 added (151657-151664) tokenize and decode as HF's tokenizer.json has them.
    Which are special follows the GGUF (llama.cpp's converter): <tool_call> and </tool_call> are
    user-defined text, the <|fim_*|>, <|repo_name|> and <|file_sep|> tokens control tokens."""
    import json

    added = json.loads((fixtures / "tokenizer/qwen25vl/tokenizer.json").read_text())["added_tokens"]
    extra = {token["id"]: token["content"] for token in added if token["id"] >= 151657}
    assert sorted(extra) == list(range(151657, 151665))
    for token_id, content in extra.items():
        assert model.tokenize(f"a{content}b")[1] == token_id
        assert model.detokenize([token_id]) == content
        assert model.tokenizer.is_special(token_id) == (content not in ("<tool_call>", "</tool_call>"))


# --- window attention -----------------------------------------------------------------------------

def hf_get_window_index(grid_thw, window_size=112, patch_size=14, merge=2):
    """transformers' Qwen2_5_VisionTransformerPretrainedModel.get_window_index, transcribed to numpy:
    pad each merged grid up to whole windows with -100, cut windows, drop the padding."""
    window_index, cu_window_seqlens, window_index_id = [], [0], 0
    vit_merger_window_size = window_size // merge // patch_size
    for grid_t, grid_h, grid_w in grid_thw:
        llm_grid_h, llm_grid_w = grid_h // merge, grid_w // merge
        index = np.arange(grid_t * llm_grid_h * llm_grid_w).reshape(grid_t, llm_grid_h, llm_grid_w)
        pad_h = vit_merger_window_size - llm_grid_h % vit_merger_window_size
        pad_w = vit_merger_window_size - llm_grid_w % vit_merger_window_size
        num_windows_h = (llm_grid_h + pad_h) // vit_merger_window_size
        num_windows_w = (llm_grid_w + pad_w) // vit_merger_window_size
        index_padded = np.pad(index, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=-100)
        index_padded = index_padded.reshape(grid_t, num_windows_h, vit_merger_window_size, num_windows_w,
                                            vit_merger_window_size)
        index_padded = index_padded.transpose(0, 1, 3, 2, 4).reshape(
            grid_t, num_windows_h * num_windows_w, vit_merger_window_size, vit_merger_window_size)
        seqlens = (index_padded != -100).sum(axis=(2, 3)).reshape(-1)
        index_padded = index_padded.reshape(-1)
        window_index.append(index_padded[index_padded != -100] + window_index_id)
        cu_window_seqlens.extend((np.cumsum(seqlens) * merge * merge + cu_window_seqlens[-1]).tolist())
        window_index_id += grid_t * llm_grid_h * llm_grid_w
    bounds = [b for i, b in enumerate(cu_window_seqlens) if i == 0 or b != cu_window_seqlens[i - 1]]  # unique_consecutive
    return np.concatenate(window_index), bounds


@pytest.mark.parametrize("grids", [
    [[1, 14, 6]],                             # b_image: merged 7 x 3, two windows
    [[1, 4, 4], [1, 8, 22]],                  # c_2images: one window, then 4 x 11 in three
    [[2, 8, 6]],                              # d_video: a 4 x 3 frame pair, twice
    [[1, 16, 16]],                            # exactly 2 x 2 windows (HF pads a whole empty window row)
    [[3, 18, 30], [1, 2, 2], [2, 34, 10]],    # ragged everywhere, several frames
])
def test_window_order_matches_hf_get_window_index(grids):
    order, bounds = _core.window_order(np.array(grids, dtype=np.int64), 2, 112 // 14 // 2)
    expected_order, expected_bounds = hf_get_window_index(grids)
    np.testing.assert_array_equal(order, expected_order)
    assert bounds.tolist() == expected_bounds


def test_windows_restrict_attention_only_where_an_image_spans_several(model, fixtures):
    """With every layer attending fully the embeddings change for b_image (two windows) but not for a
    4 x 4 image (one window): the windowed layers really see only their window."""
    spec = vision_spec(model.config.vision)
    spec.full_attention_layers = list(range(spec.num_layers))
    full = _core.VisionModel(model.mmproj_file.handle, spec, model._pool)
    two_windows = reference(fixtures, "b_image")
    pixels, grid = two_windows["pixel_values"], two_windows["image_grid_thw"]
    assert np.abs(full.encode(pixels, grid) - model.encode_pixels(pixels, grid, precision="exact")).max() > 1e-2
    one_window = reference(fixtures, "c_2images")
    first = int(np.prod(one_window["image_grid_thw"][0]))
    pixels, grid = one_window["pixel_values"][:first], one_window["image_grid_thw"][:1]
    np.testing.assert_allclose(full.encode(pixels, grid), model.encode_pixels(pixels, grid, precision="exact"),
                               rtol=0, atol=1e-5)
