"""Shared test fixtures: where the golden files live and how their absence is reported."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _available_isas() -> list[str]:
    from qvl_local import ops

    return ops.available_isas()


def _fixtures_root() -> Path:
    return Path(os.environ.get("QVL_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """The shared golden fixtures; a missing folder skips locally but fails under CI=true."""
    root = _fixtures_root()
    if not (root / "README.md").is_file():
        message = f"golden fixtures not found at {root} (set QVL_FIXTURES)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(params=_available_isas())
def isa(request: pytest.FixtureRequest):
    """Runs the test once per kernel ISA path this machine has (scalar, avx2, avx512, amx, neon)."""
    from qvl_local import ops

    previous = ops.active_isa()
    ops.set_isa(request.param)
    yield request.param
    ops.set_isa(previous)


@pytest.fixture(scope="session")
def ollama_file(fixtures: Path, tmp_path_factory) -> Path:
    """qwen25vl-tiny as one file (general.architecture = qwen25vl, text and v.* tensors together)."""
    from fixture_tools import ollama_qwen25vl  # imports this module: not at its top

    return ollama_qwen25vl(fixtures, tmp_path_factory)


@pytest.fixture(scope="session")
def ollama_file_without_template(fixtures: Path, tmp_path_factory) -> Path:
    """The same without tokenizer.chat_template, as Ollama blobs whose template is a registry layer."""
    from fixture_tools import ollama_qwen25vl

    return ollama_qwen25vl(fixtures, tmp_path_factory, chat_template=False)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child `python -m qvl_local`: it imports the very package this test run
    imported (installed or a development tree), not whatever else is on the path."""
    import qvl_local

    package_parent = str(Path(qvl_local.__file__).resolve().parent.parent)
    paths = [package_parent, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


class RecordingDecoder:
    """Stands in for a model's C++ decoder, passing every call through and recording how many tokens
    each forward ran: what a test needs to see that a cached prefix was not computed again."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.forward_sizes: list[int] = []

    def forward(self, ids, *args, **kwargs):
        self.forward_sizes.append(len(ids))
        return self.decoder.forward(ids, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.decoder, name)


def write_lossless_video(path: Path, frames: list, fps: int) -> Path:
    """A real video file (FFV1, lossless) of uint8 RGB frames, for tests that decode it back."""
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "bgr0"
        stream.time_base = Fraction(1, fps)
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="bgr0")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
