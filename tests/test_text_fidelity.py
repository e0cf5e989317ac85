"""The fast path's text logits are never further from float math than llama.cpp's (issue #16, item 11),
and on K-quant files clearly closer.

Error = last-position logits of precision "fast" minus those of "exact" (float activations on the same
dequantized weights: the HF float32 reference within 2e-4, test_model_golden.py), as max abs and RMS.

One prompt cannot rank two engines: its error is one draw of the 8-bit rounding. On a_text (Q8_0) the
float summation order alone moves our figure from 0.176 / 0.041 (avx2) to 0.203 / 0.047 (avx512), and
llama.cpp's own build here gives 0.204 / 0.043 where §7 of the fixtures README recorded 0.19 / 0.043.
So the main pin is the MEAN over 60 held-out prompts (`benchmarks.text_fidelity`, seed 1: random
ordinary ids, 4-256 tokens), against llama.cpp's mean on the same ids and files, measured with

    python -m benchmarks.text_fidelity --files q8_0 q4_k_m --seed 1 --prompts 60

(libllama 0.5.0 of llama-cpp-python 0.3.36's tree, GGML_NATIVE, repack and llamafile on, its default
F16 KV cache, 2 threads). Ours then, per ISA: Q8_0 0.303-0.309 / 0.0667-0.0668 (Q4_K_M, with
Q8_K's blocks then: 0.437-0.439 / 0.0934-0.0937). The Q8_0 limit is llama.cpp's mean plus 3%: how
far the 60-prompt mean moves when only the rounding draws change (summation order, other ISA), so a test that passes means
"level with llama.cpp or better", and a real regression of the kernels' error (a wrong scale or
rounding costs far more) fails it.
Q4_K_M is held to 80% of llama.cpp's mean: our K-quant products give the activations a scale per
sub-block (prompts: 32 values, Q6_K 16; decode: act_quant_scale.h's multiples of a per-256 base) where
llama.cpp's Q8_K has one per 256, which measured 0.305 / 0.0659 against 0.437 / 0.0937 (ours was
0.437 / 0.0934 with Q8_K's blocks), so a return to the coarser rounding fails it.
The a_text figures are held to §7's llama.cpp values plus 10% (Q8_0; Q4_K_M: 80% of them), as
issue #16 asks. That check pins one draw: a change of rounding or summation order alone can move it
by far more than 10% (a simulated
redraw of the rounding gave a_text Q8_0 RMS 0.040-0.065) with no change in the mean error. If it fails
after such a change, the mean test above and `benchmarks.text_fidelity` say whether anything got worse.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qvl_local
from benchmarks.spec import text_positions
from benchmarks.text_fidelity import FIXTURE_FILES, decoder_last_logits, held_out_prompts

# llama.cpp's mean (max abs, RMS) over the 60 prompts of seed 1, measured as the docstring says.
LLAMA_CPP_MEAN = {"q8_0": (0.3104, 0.0672), "q4_k_m": (0.4328, 0.0935)}
MEAN_MARGIN = {"q8_0": 1.03, "q4_k_m": 0.80}
# llama.cpp's mean on the Q4_K_M file with the last token run alone (--decode-step, same setup).
LLAMA_CPP_DECODE_STEP_MEAN = (0.4366, 0.0935)
# Fixtures README §7: llama.cpp on a_text (max abs, RMS).
LLAMA_CPP_A_TEXT = {"q8_0": (0.19, 0.043), "q4_k_m": (0.43, 0.095)}
A_TEXT_MARGIN = {"q8_0": 1.10, "q4_k_m": 0.80}


def fast_errors(model: qvl_local.Model, prompts: dict[str, np.ndarray], decode_step: bool = False) -> np.ndarray:
    """(max abs, RMS) of fast - exact on the last position, one row per prompt; with decode_step the last
    token runs alone after the others (the decode kernels' rounding)."""
    rows = []
    for ids in prompts.values():
        logits = {precision: decoder_last_logits(model._decoder, ids, precision, decode_step)
                  for precision in ("exact", "fast")}
        error = logits["fast"].astype(np.float64) - logits["exact"]
        rows.append((np.abs(error).max(), np.sqrt(np.mean(error**2))))
    return np.array(rows)


@pytest.mark.parametrize("quant", list(FIXTURE_FILES))
def test_mean_error_level_with_llama_cpp(fixtures: Path, isa, quant) -> None:
    model = qvl_local.load(fixtures / "gguf" / FIXTURE_FILES[quant], mmproj=False, n_ctx=512)
    prompts = {name: ids for name, ids in held_out_prompts(60, 1, fixtures).items() if name.startswith("random")}
    mean_max, mean_rms = fast_errors(model, prompts).mean(axis=0)
    llama_max, llama_rms = LLAMA_CPP_MEAN[quant]
    assert mean_max <= llama_max * MEAN_MARGIN[quant]
    assert mean_rms <= llama_rms * MEAN_MARGIN[quant]


def test_q4_k_m_decode_step_error_below_llama_cpp(fixtures: Path, isa) -> None:
    """The decode kernels' activations (a multiple of a per-256 base per sub-block) against llama.cpp's
    Q8_K on the same prompts' last token run alone (`benchmarks.text_fidelity --decode-step`): ours
    0.323 / 0.0686, llama.cpp 0.437 / 0.0935; held to 80% of llama.cpp's."""
    model = qvl_local.load(fixtures / "gguf" / FIXTURE_FILES["q4_k_m"], mmproj=False, n_ctx=512)
    prompts = {name: ids for name, ids in held_out_prompts(60, 1, fixtures).items() if name.startswith("random")}
    mean_max, mean_rms = fast_errors(model, prompts, decode_step=True).mean(axis=0)
    assert mean_max <= LLAMA_CPP_DECODE_STEP_MEAN[0] * MEAN_MARGIN["q4_k_m"]
    assert mean_rms <= LLAMA_CPP_DECODE_STEP_MEAN[1] * MEAN_MARGIN["q4_k_m"]


@pytest.mark.parametrize("quant", list(FIXTURE_FILES))
def test_a_text_error_near_llama_cpp(fixtures: Path, isa, quant) -> None:
    model = qvl_local.load(fixtures / "gguf" / FIXTURE_FILES[quant], mmproj=False, n_ctx=512)
    ids = np.load(fixtures / f"ref/qwen2vl-tiny/{quant}/a_text.npz")["input_ids"].astype(np.int32)
    [(max_abs, rms)] = fast_errors(model, {"a_text": ids})
    llama_max, llama_rms = LLAMA_CPP_A_TEXT[quant]
    assert max_abs <= llama_max * A_TEXT_MARGIN[quant]
    assert rms <= llama_rms * A_TEXT_MARGIN[quant]
