"""The whole model against the HF reference (fixtures/ref): logits, vision embeddings, greedy tokens.

The references were computed by HF transformers in float32 on exactly the GGUF files' dequantized
weights, so the two precisions have their own limits:
- exact (float activations): logits within 2e-4, embeddings within 1e-4 (measured: 1.7e-5 / 2.1e-5).
- fast (8-bit activations, as llama.cpp): measured max-abs / RMS on the final logits of
  0.19-0.31 / 0.040-0.063 on Q8_0 and 0.29-0.42 / 0.062-0.095 on Q4_K_M. llama.cpp's own error on these
  files is 0.19-0.24 / 0.043-0.05 (Q8_0) and 0.36-0.43 / 0.08-0.095 (Q4_K_M) (fixtures README, §7).
  The limits below sit just above what we measure. Our fast arithmetic is llama.cpp's: one case's
  figure is one draw of the rounding (a_text Q8_0: 0.18-0.20 by ISA vs its 0.19), and over 60 prompts
  the two means are level (tests/test_text_fidelity.py); on the image cases it ran on its own embeddings (0.011 off HF's), and such a
  perturbation alone moves our b_image figure between 0.26 and 0.31: the max-abs of one realisation,
  not a worse kernel. So the image cases are held to the median of 9 draws (golden.check_fast_logits:
  the pixels perturbed by 1e-6 relative; over 16 draws on avx512 the medians were 0.22-0.29 / 0.050-0.061
  on Q8_0 and 0.30-0.38 / 0.066-0.082 on Q4_K_M, the worst single draws 0.31 / 0.067 and 0.447 / 0.094).
Greedy tokens must match exactly on every path: every reference step has a top1-top2 margin above
our fast-path error, and a teacher-forced check guards each step on its own. That holds for int8 too
(the F16 projector's weights as Q8_0 blocks, ~2% RMS off in the vision embeddings: tests/test_vision.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qvl_local
from golden import (
    EXACT_EMBEDDING_ATOL,
    FAST_LOGITS_LIMITS,
    check_exact_logits,
    check_fast_logits,
    check_generate_from_media_files,
    check_teacher_forced_greedy,
    media_arrays,
)

QUANTS = {"q8_0": "qwen2vl-tiny-Q8_0.gguf", "q4_k_m": "qwen2vl-tiny-Q4_K_M.gguf"}
CASES = ["a_text", "b_image", "c_2images", "c_2images_pil", "d_video"]


@pytest.fixture(scope="module", params=list(QUANTS))
def quant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(fixtures: Path, quant: str) -> qvl_local.Model:
    return qvl_local.load(fixtures / "gguf" / QUANTS[quant], mmproj=fixtures / "gguf/mmproj-qwen2vl-tiny-F16.gguf", n_ctx=512)


def reference(fixtures: Path, quant: str, case: str):
    return np.load(fixtures / f"ref/qwen2vl-tiny/{quant}/{case}.npz")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_logits(model, fixtures, quant, case, precision) -> None:
    ref = reference(fixtures, quant, case)
    if precision == "fast":
        check_fast_logits(model, ref, FAST_LOGITS_LIMITS[quant])
        return
    logits = model.forward(ref["input_ids"], precision=precision, **media_arrays(ref))
    assert logits.shape == (len(ref["input_ids"]), model.config.text.vocab_size)
    check_exact_logits(logits, ref)


@pytest.mark.parametrize("case", ["b_image", "c_2images", "c_2images_pil", "d_video"])
def test_vision_embeddings(model, fixtures, quant, case) -> None:
    ref = reference(fixtures, quant, case)
    arrays = media_arrays(ref)
    pixels, grids = list(arrays.values())
    embeddings = model.encode_pixels(pixels, grids, precision="exact")
    expected = ref["image_embeds"] if "image_embeds" in ref else ref["video_embeds"]
    np.testing.assert_allclose(embeddings, expected, rtol=0, atol=EXACT_EMBEDDING_ATOL)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["exact", "fast", "int8"])
def test_teacher_forced_greedy_steps(model, fixtures, quant, case, precision) -> None:
    """Each reference greedy token is our argmax when the earlier ones are fed in, through the KV cache."""
    ref = reference(fixtures, quant, case)
    arrays = media_arrays(ref)
    embeddings = model.encode_pixels(*list(arrays.values())[:2], precision=precision) if arrays else None
    check_teacher_forced_greedy(model, ref, precision, embeddings=embeddings)


@pytest.mark.parametrize("case", ["a_text", "b_image", "c_2images_pil", "d_video"])
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_generate_from_media_files(model, fixtures, quant, case, precision) -> None:
    """The whole path: prompt text and media files in, the reference's 8 greedy tokens out.

    c_2images_pil is the two-image case with the PIL-backend pixels we reproduce; the torchvision
    pixels of c_2images differ by up to 0.24 where an image is upscaled.
    """
    ref = reference(fixtures, quant, case)
    check_generate_from_media_files(model, fixtures, ref, precision)


def test_chat_matches_reference_prompt(model, fixtures, quant) -> None:
    ref = reference(fixtures, quant, "b_image")
    messages = [{"role": "user", "content": [{"type": "image", "image": str(fixtures / "media/img_97x203.png")},
                                             {"type": "text", "text": str(ref["user_text"])}]}]
    assert model.chat(messages, max_new_tokens=8, precision="exact") == str(ref["greedy_text"])
