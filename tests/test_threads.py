"""The thread count: checked and capped in one place for the API and the CLI (issue 16, item 4)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qvl_local.threads import MAX_THREADS_PER_CORE, available_cores, thread_count


def test_default_is_every_available_core() -> None:
    assert thread_count(None) == available_cores() >= 1


@pytest.mark.parametrize("n_threads", [1, 2, np.int64(3), MAX_THREADS_PER_CORE * available_cores()])
def test_sane_counts_are_kept(n_threads) -> None:
    assert thread_count(n_threads) == n_threads


@pytest.mark.parametrize("n_threads", [0, -2, 2.5, "4"])
def test_counts_below_one_or_not_whole_are_refused(n_threads) -> None:
    with pytest.raises(ValueError, match="n_threads"):
        thread_count(n_threads)


def test_absurd_counts_are_capped_with_a_warning() -> None:
    limit = MAX_THREADS_PER_CORE * available_cores()
    with pytest.warns(UserWarning, match=f"10000 threads asked on {available_cores()} cores: using {limit}"):
        assert thread_count(10000) == limit


def test_load_refuses_a_bad_count_before_looking_for_the_model(tmp_path: Path) -> None:
    import qvl_local

    # The name is not in the store: were it looked up first, this would be a pull (or a missing model).
    with pytest.raises(ValueError, match="n_threads must be at least 1, got -2"):
        qvl_local.load("not-pulled:anything", n_threads=-2, models_dir=tmp_path)


def test_load_caps_the_count(fixtures: Path) -> None:
    import qvl_local

    limit = MAX_THREADS_PER_CORE * available_cores()
    with pytest.warns(UserWarning, match=f"using {limit}"):
        model = qvl_local.load(fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf", mmproj=False, n_threads=limit + 1, n_ctx=128)
    assert model.n_threads == limit


@pytest.mark.parametrize("n_threads", [0, 2.5])
def test_model_constructor_refuses_a_bad_count_before_reading_the_file(tmp_path: Path, n_threads) -> None:
    from qvl_local.model import Model

    with pytest.raises(ValueError, match="n_threads must"):
        Model(tmp_path / "absent.gguf", n_threads=n_threads)


def test_model_constructor_caps_the_count(fixtures: Path) -> None:
    from qvl_local.model import Model

    limit = MAX_THREADS_PER_CORE * available_cores()
    with pytest.warns(UserWarning, match=f"using {limit}"):
        model = Model(fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf", n_threads=limit + 1, n_ctx=128)
    assert model.n_threads == limit


@pytest.mark.parametrize("n_threads", [0, 2.5, "4"])
def test_quantize_refuses_a_bad_count_before_reading_the_source(tmp_path: Path, n_threads) -> None:
    from qvl_local.quantize import quantize_gguf

    with pytest.raises(ValueError, match="n_threads must"):
        quantize_gguf(tmp_path / "absent.gguf", tmp_path / "out.gguf", "Q8_0", n_threads=n_threads)


def test_quantize_caps_the_count(fixtures: Path, tmp_path: Path) -> None:
    """A count over the limit warns and the quantization runs (on the small F16 projector)."""
    from qvl_local.quantize import quantize_gguf

    limit = MAX_THREADS_PER_CORE * available_cores()
    with pytest.warns(UserWarning, match=f"{limit + 1} threads asked on {available_cores()} cores: using {limit}"):
        report = quantize_gguf(fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf", tmp_path / "out.gguf", "Q8_0",
                               n_threads=limit + 1)
    assert report.destination.is_file()
