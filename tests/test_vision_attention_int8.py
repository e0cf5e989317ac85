"""The int8 vision attention (precision="int8" on the avx512 and amx paths) against the float one.

Under int8 the avx512 path quantizes the attention (int8 queries and keys, u8 probabilities per key
block, int8 values per channel) while avx2 and scalar keep it float, so avx512 vs avx2 under int8 is
int8 attention vs float attention -- plus the two paths' int8 GEMMs, which differ by themselves: on
the ragged segments below, with float attention on both, 0.60e-2 RMS relative. With the int8
attention the distance is 1.57e-2 RMS and 1.97e-2 max (of max |features|); the limits below are the
encoder's int8 tolerances, and the lower bound 1e-2 shows that the int8 attention ran (its rounding
lies well above the GEMMs' difference). On the golden cases (<= 192 patches) the embeddings stay
1.91-2.06e-2 RMS and 2.17-2.71e-2 max from the reference (float attention on avx512: 1.88-1.98e-2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qvl_local import _core
from qvl_local.config import _vision_config, vision_spec
from qvl_local.gguf_file import GGUFFile
from test_vision import CASES, INT8_MAX_RELATIVE, INT8_RMS_RELATIVE, load_case, rms_relative

# 140 patches (query blocks 48 + 48 + 44, key blocks 64 + 64 + 12), 60 (48 + 12: one vector of query
# lanes), a two-frame video of 24 per frame (two vectors; 24 keys: one block of 6 quads)
RAGGED_GRID = np.array([[1, 10, 14], [1, 6, 10], [2, 4, 6]], dtype=np.int64)
INT8_ATTENTION_MIN_RMS = 1e-2  # vs float attention: over the int8 GEMMs' own avx512 / avx2 difference
INT8_ATTENTION_ISAS = [isa for isa in ("avx512", "amx") if isa in _core.available_isas()]
needs_int8_attention = pytest.mark.skipif(
    not INT8_ATTENTION_ISAS or "avx2" not in _core.available_isas(),
    reason="the int8 attention runs on the avx512 / amx paths only, which this build or CPU lacks",
)


@pytest.fixture(scope="module")
def vision(fixtures: Path) -> _core.VisionModel:
    mmproj = GGUFFile(fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf")
    return _core.VisionModel(mmproj.handle, vision_spec(_vision_config(mmproj)), _core.ThreadPool(2))


def encode_int8(vision: _core.VisionModel, pixels: np.ndarray, grid: np.ndarray, isa: str, **kwargs) -> np.ndarray:
    before = _core.active_isa()
    try:
        _core.set_isa(isa)
        return vision.encode(pixels, grid, precision="int8", **kwargs)
    finally:
        _core.set_isa(before)


@needs_int8_attention
@pytest.mark.parametrize("isa", INT8_ATTENTION_ISAS)
def test_int8_attention_stays_near_float_attention_on_ragged_segments(vision, isa):
    pixels = np.random.default_rng(0).standard_normal((int(np.prod(RAGGED_GRID, axis=1).sum()), 1176))
    pixels = pixels.astype(np.float32)
    float_attention = encode_int8(vision, pixels, RAGGED_GRID, "avx2", pre_merge=True)
    int8_attention = encode_int8(vision, pixels, RAGGED_GRID, isa, pre_merge=True)
    assert np.isfinite(int8_attention).all()
    assert INT8_ATTENTION_MIN_RMS < rms_relative(int8_attention, float_attention) < INT8_RMS_RELATIVE
    assert np.abs(int8_attention - float_attention).max() < INT8_MAX_RELATIVE * np.abs(float_attention).max()


@needs_int8_attention
@pytest.mark.parametrize("case", sorted(CASES))
def test_int8_attention_embeddings_stay_within_the_int8_tolerance(fixtures, vision, case):
    pixels, grid, expected = load_case(fixtures, case)
    embeds = encode_int8(vision, pixels, grid, INT8_ATTENTION_ISAS[0])
    assert rms_relative(embeds, expected) < INT8_RMS_RELATIVE
    assert np.abs(embeds - expected).max() < INT8_MAX_RELATIVE * np.abs(expected).max()
