"""The vision encoder's attention tile routines (scalar, avx2, avx512) agree on ragged segments.

Attention is reached through the encoder on the fixture mmproj (head_dim 64): each ISA path's output is
compared with the scalar path's. The segments are chosen so that, per 48-query block and 64-key block,
the tile routines see every kind of remainder: 140 patches (48 + 48 + 44 queries; 64 + 64 + 12 keys),
60 (48 + 12: a single AVX-512 vector of queries), and a two-frame video of 24 per frame (two vectors).
Only summation order differs between the paths; measured max difference 9e-7 of the output scale on
this machine, so the tolerance of 1e-5 leaves ~10x room.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qvl_local import _core
from qvl_local.config import _vision_config, vision_spec
from qvl_local.gguf_file import GGUFFile

RAGGED_GRID = np.array([[1, 10, 14], [1, 6, 10], [2, 4, 6]], dtype=np.int64)  # (t, h, w) per image/video
MAX_RELATIVE_DIFFERENCE = 1e-5  # of max |scalar output|
VECTOR_ISAS = [isa for isa in _core.available_isas() if isa != "scalar"]


@pytest.fixture(scope="module")
def vision(fixtures: Path) -> _core.VisionModel:
    mmproj = GGUFFile(fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf")
    return _core.VisionModel(mmproj.handle, vision_spec(_vision_config(mmproj)), _core.ThreadPool(2))


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    n_patches = int(np.prod(RAGGED_GRID, axis=1).sum())
    return np.random.default_rng(0).standard_normal((n_patches, 1176)).astype(np.float32)


def encode_with_isa(vision: _core.VisionModel, pixels: np.ndarray, isa: str) -> np.ndarray:
    before = _core.active_isa()
    try:
        _core.set_isa(isa)
        return vision.encode(pixels, RAGGED_GRID, pre_merge=True)
    finally:
        _core.set_isa(before)


@pytest.mark.skipif(not VECTOR_ISAS, reason="no vector ISA on this machine")
@pytest.mark.parametrize("isa", VECTOR_ISAS)
def test_vector_path_matches_scalar_on_ragged_segments(vision, pixels, isa):
    expected = encode_with_isa(vision, pixels, "scalar")
    actual = encode_with_isa(vision, pixels, isa)
    assert actual.shape == expected.shape == (pixels.shape[0], 256)
    scale = float(np.abs(expected).max())
    assert np.abs(actual - expected).max() < MAX_RELATIVE_DIFFERENCE * scale
