"""`qvl-local` end to end: pull from a loopback registry, list, show, run, rm; exit codes and errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qvl_local.cli import main
from qvl_local.store import MODEL_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE, ModelStore
from registry_server import RegistryServer
from conftest import subprocess_env

NAME = "library/qwen2vl-tiny:q8_0"


@pytest.fixture
def server(fixtures: Path):
    with RegistryServer() as running:
        running.publish_fixture_model(fixtures, NAME)
        yield running


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m qvl_local` as a user would, in its own process."""
    env = subprocess_env()
    return subprocess.run([sys.executable, "-m", "qvl_local", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)


def pull_args(server: RegistryServer, store: Path, name: str = NAME) -> list[str]:
    return ["pull", name, "--registry", server.url, "--models-dir", str(store), "--quiet"]


# -- help and usage -----------------------------------------------------------------------------


def test_help_lists_every_command(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "pull", "list", "rm", "show", "quantize", "bench", "serve"):
        assert f"    {command} " in out
    assert "examples:" in out


def test_run_help_explains_chat_and_options(capsys) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--image", "--video", "--fps", "--mmproj", "--threads", "--ctx-size", "--max-tokens",
                   "--temperature", "--seed", "--min-pixels", "--max-pixels", "--precision", "/bye"):
        assert option in out


@pytest.mark.parametrize("argv", [[], ["run"], ["run", "m", "--temperature", "-1"], ["pull"], ["frobnicate"],
                                  ["serve", "m", "--port", "70000"]])
def test_usage_errors_exit_2(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


# -- errors are one line, exit 1 ----------------------------------------------------------------


def test_unknown_model_is_one_line_exit_1(server: RegistryServer, tmp_path: Path) -> None:
    result = cli(*pull_args(server, tmp_path, "library/absent:latest"))
    assert result.returncode == 1
    assert result.stderr.startswith("qvl-local: error: ") and result.stderr.count("\n") == 1
    assert "404" in result.stderr and "Traceback" not in result.stderr


def test_bad_names_and_missing_models_exit_1(tmp_path: Path, capsys) -> None:
    assert main(["pull", "../etc/passwd", "--models-dir", str(tmp_path)]) == 1
    assert main(["show", "not-pulled", "--models-dir", str(tmp_path)]) == 1
    assert main(["rm", "not-pulled", "--models-dir", str(tmp_path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(line.startswith("qvl-local: error: ") for line in errors)
    assert "qvl-local pull not-pulled:latest" in errors[1]


# -- pull, list, show, rm -----------------------------------------------------------------------


def test_pull_list_show_rm(server: RegistryServer, tmp_path: Path) -> None:
    pulled = cli(*pull_args(server, tmp_path))
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.startswith(f"pulled {server.netloc}/{NAME}")
    assert pulled.stderr == ""  # not a terminal: no progress bars

    listed = cli("list", "--models-dir", str(tmp_path))
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "QUANT", "MODIFIED"]
    assert row.split()[:4] == [f"{server.netloc}/{NAME}", "58.1", "MB", "Q8_0"]

    shown = cli("show", "qwen2vl-tiny:q8_0", "--models-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    for expected in ("architecture  qwen2vl", "file type     Q8_0", "tensors       26 (F32 11, Q8_0 15)",
                     "qwen2vl.block_count", "projector", "architecture  clip", "<|im_end|>", "template"):
        assert expected in shown.stdout

    removed = cli("rm", "qwen2vl-tiny:q8_0", "--models-dir", str(tmp_path))
    assert removed.returncode == 0 and "5 blobs removed" in removed.stdout
    assert cli("list", "--models-dir", str(tmp_path)).stdout.splitlines() == ["NAME  SIZE  QUANT  MODIFIED"]
    assert list((tmp_path / "blobs").iterdir()) == []


def test_two_pull_processes_at_once(server: RegistryServer, published_size: int, tmp_path: Path) -> None:
    env = subprocess_env()
    command = [sys.executable, "-m", "qvl_local", *pull_args(server, tmp_path)]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert server.total_blob_bytes_sent() == published_size  # each blob downloaded once
    assert main(["show", NAME, "--models-dir", str(tmp_path)]) == 0


@pytest.fixture
def published_size(server: RegistryServer, fixtures: Path) -> int:
    return server.publish_fixture_model(fixtures, NAME).total_size


# -- run (needs the model runtime) --------------------------------------------------------------


def test_run_streams_the_same_answer_as_the_api(server: RegistryServer, tmp_path: Path, capsys) -> None:
    import qvl_local

    assert main(pull_args(server, tmp_path)) == 0
    capsys.readouterr()
    options = ["--models-dir", str(tmp_path), "--max-tokens", "6", "--temperature", "0", "--ctx-size", "512"]

    assert main(["run", "qwen2vl-tiny:q8_0", *options, "Describe the weather."]) == 0
    printed = capsys.readouterr().out

    store = ModelStore(tmp_path)
    manifest = store.read_manifest(store.find("qwen2vl-tiny:q8_0"))
    model = qvl_local.load(store.blob_path(manifest.layer(MODEL_MEDIA_TYPE).digest),
                           mmproj=store.blob_path(manifest.layer(PROJECTOR_MEDIA_TYPE).digest), n_ctx=512)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe the weather."}]}]
    assert printed == model.chat(messages, max_new_tokens=6, temperature=0.0) + "\n"


def test_run_with_image_and_chat_from_stdin(server: RegistryServer, fixtures: Path, tmp_path: Path) -> None:
    assert cli(*pull_args(server, tmp_path)).returncode == 0
    image = next((fixtures / "media").glob("*.png"))
    options = ["--models-dir", str(tmp_path), "--max-tokens", "4", "--temperature", "0", "--ctx-size", "2048"]

    once = cli("run", "qwen2vl-tiny:q8_0", *options, "--image", str(image), "What is this?")
    chat = cli("run", "qwen2vl-tiny:q8_0", *options, "--image", str(image), stdin="What is this?\nAnd now?\n/bye\n")

    assert once.returncode == 0, once.stderr
    assert chat.returncode == 0, chat.stderr
    first_answer, second_answer = chat.stdout.splitlines()[:2]
    assert first_answer == once.stdout.rstrip("\n")  # the first turn is the one-shot question
    assert second_answer  # the second turn answered with the first one's cache


def test_run_passes_the_precision_to_the_model(server: RegistryServer, fixtures: Path, tmp_path: Path) -> None:
    import qvl_local

    assert cli(*pull_args(server, tmp_path)).returncode == 0
    image = next((fixtures / "media").glob("*.png"))
    options = ["--models-dir", str(tmp_path), "--max-tokens", "6", "--temperature", "0", "--ctx-size", "2048"]
    int8 = cli("run", "qwen2vl-tiny:q8_0", *options, "--precision", "int8", "--image", str(image), "What is this?")
    assert int8.returncode == 0, int8.stderr

    model = qvl_local.load("qwen2vl-tiny:q8_0", models_dir=tmp_path, n_ctx=2048, precision="int8")
    messages = [{"role": "user", "content": [{"type": "image", "image": str(image)}, {"type": "text", "text": "What is this?"}]}]
    assert int8.stdout == model.chat(messages, max_new_tokens=6, temperature=0.0) + "\n"
