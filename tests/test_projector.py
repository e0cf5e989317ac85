"""Projector discovery in a shared model folder: the mmproj that belongs to the model, never one that
does not fit (issue 16, item 5). The fixtures keep one family per folder; these tests put them together."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixture_tools import link_as, link_into, ollama_qwen25vl, with_projection_dim
from qvl_local.config import holds_vision_encoder
from qvl_local.gguf_file import GGUFFile
from qvl_local.projector import AmbiguousProjectorError, NoFittingProjectorError, find_projector, name_stem

QWEN2VL = ("gguf/qwen2vl-tiny-Q8_0.gguf", "gguf/mmproj-qwen2vl-tiny-F16.gguf")
QWEN25VL = ("gguf/qwen25vl/qwen25vl-tiny-Q8_0.gguf", "gguf/qwen25vl/mmproj-qwen25vl-tiny-F16.gguf")
QWEN3VL = ("gguf/qwen3vl/qwen3vl-tiny-Q8_0.gguf", "gguf/qwen3vl/mmproj-qwen3vl-tiny-F16.gguf")


@pytest.fixture
def shared_folder(fixtures: Path, tmp_path: Path) -> Path:
    """A downloads folder holding the three families' models and projectors side by side."""
    link_into(tmp_path / "models", *(fixtures / name for pair in (QWEN2VL, QWEN25VL, QWEN3VL) for name in pair))
    return tmp_path / "models"


@pytest.mark.parametrize("pair", [QWEN2VL, QWEN25VL, QWEN3VL], ids=["qwen2vl", "qwen25vl", "qwen3vl"])
def test_each_model_gets_its_own_projector_in_a_shared_folder(shared_folder: Path, pair: tuple[str, str]) -> None:
    model, projector = (Path(name).name for name in pair)
    assert find_projector(shared_folder / model) == shared_folder / projector


def test_projector_type_decides_when_names_do_not(fixtures: Path, tmp_path: Path) -> None:
    # Renamed files (e.g. `mmproj-F16.gguf` as some repos name it): only the projector type tells.
    folder = tmp_path / "renamed"
    link_as(folder, {"model.gguf": fixtures / QWEN3VL[0], "mmproj-F16.gguf": fixtures / QWEN2VL[1],
                     "mmproj-BF16.gguf": fixtures / QWEN3VL[1]})
    assert find_projector(folder / "model.gguf") == folder / "mmproj-BF16.gguf"


def test_several_fitting_projectors_without_a_name_match_are_listed(fixtures: Path, tmp_path: Path) -> None:
    # Qwen2-VL's and Qwen2.5-VL's projectors both fit a `qwen2vl` text model of width 256.
    folder = tmp_path / "two"
    link_as(folder, {"model.gguf": fixtures / QWEN2VL[0], "mmproj-a.gguf": fixtures / QWEN2VL[1],
                     "mmproj-b.gguf": fixtures / QWEN25VL[1]})
    with pytest.raises(AmbiguousProjectorError, match=r"mmproj-a\.gguf, mmproj-b\.gguf.*pass mmproj="):
        find_projector(folder / "model.gguf")


def test_a_projector_of_another_width_is_never_chosen(fixtures: Path, tmp_path: Path) -> None:
    folder = tmp_path / "widths"
    link_into(folder, fixtures / QWEN2VL[0])
    # Its name matches the model's, but its output width (512) is not the model's hidden size (256).
    with_projection_dim(fixtures / QWEN2VL[1], folder / "mmproj-qwen2vl-tiny-F16.gguf", 512)
    with pytest.raises(NoFittingProjectorError, match="output width 512, the model's hidden size is 256"):
        find_projector(folder / "qwen2vl-tiny-Q8_0.gguf")

    link_as(folder, {"mmproj-other-f32.gguf": fixtures / QWEN2VL[1]})
    assert find_projector(folder / "qwen2vl-tiny-Q8_0.gguf") == folder / "mmproj-other-f32.gguf"


def test_no_projector_files_means_none(fixtures: Path, tmp_path: Path) -> None:
    link_as(tmp_path, {"model.gguf": fixtures / QWEN2VL[0]})
    assert find_projector(tmp_path / "model.gguf") is None


def test_a_single_file_model_needs_no_projector(fixtures: Path, tmp_path: Path,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    link_into(tmp_path, ollama_qwen25vl(fixtures, tmp_path_factory), fixtures / QWEN25VL[1])
    assert find_projector(tmp_path / "qwen25vl-tiny-ollama.gguf") is None


def test_one_rule_says_whether_a_model_holds_its_vision(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """load() (from a path's tensor table) and the projector search (from the opened file) ask the same
    function, so they cannot disagree about a file."""
    for path, expected in ((ollama_qwen25vl(fixtures, tmp_path_factory), True), (fixtures / QWEN25VL[0], False)):
        assert holds_vision_encoder(path) is expected
        assert holds_vision_encoder(GGUFFile(path)) is expected


@pytest.mark.parametrize(("model", "projector"), [
    ("Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf", "mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf"),  # ggml-org
    ("Qwen_Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", "mmproj-Qwen_Qwen2.5-VL-7B-Instruct-f16.gguf"),  # bartowski
    ("Qwen3VL-2B-Instruct-Q4_K_M.gguf", "mmproj-Qwen3VL-2B-Instruct-Q8_0.gguf"),  # Qwen
    ("Qwen2-VL-2B.i1-Q4_K_M.gguf", "Qwen2-VL-2B.mmproj-f16.gguf"),  # mradermacher
    ("Qwen2-VL-7B-Instruct-Q4_K_M.gguf", "Qwen2-VL-7B-Instruct-mmproj-q5_1.gguf"),
])
def test_name_stems_of_real_repositories_match(model: str, projector: str) -> None:
    assert name_stem(Path(model)) == name_stem(Path(projector))


def test_name_stems_of_different_models_differ() -> None:
    assert name_stem(Path("Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf")) != name_stem(Path("mmproj-Qwen2.5-VL-7B-Instruct-f16.gguf"))
    assert name_stem(Path("Qwen2-VL-2B-Instruct-Q8_0.gguf")) != name_stem(Path("mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf"))


# -- load() in a shared folder (needs the model runtime) ------------------------------------------


def test_load_from_a_shared_folder_takes_the_models_own_projector(shared_folder: Path) -> None:
    import qvl_local

    model = qvl_local.load(shared_folder / "qwen2vl-tiny-Q8_0.gguf", n_ctx=256)

    assert model.mmproj_file.path == shared_folder / "mmproj-qwen2vl-tiny-F16.gguf"
    assert model.has_vision
