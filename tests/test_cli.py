"""`qvl-local` end to end: pull from a loopback registry, list, show, run, rm; exit codes and errors."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from qvl_local.cli import AnswerStats, main
from qvl_local.store import MODEL_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE, ModelStore
from qvl_local.threads import MAX_THREADS_PER_CORE, available_cores
from registry_server import RegistryServer
from conftest import subprocess_env
from fixture_tools import link_as

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
    for command in ("run", "pull", "list", "rm", "show", "quantize", "serve"):
        assert f"    {command} " in out
    assert "examples:" in out
    assert "qwen2-vl:2b" not in out  # no such model in Ollama's library: the examples name real ones


def test_bench_is_not_a_command_of_the_installed_tool(capsys) -> None:
    # The benchmarks live in the checkout (`python -m benchmarks.run`), not in the package.
    assert main(["bench"]) == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err


def test_run_help_explains_chat_and_options(capsys) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--image", "--video", "--fps", "--mmproj", "--threads", "--ctx-size", "--max-tokens",
                   "--temperature", "--seed", "--min-pixels", "--max-pixels", "--precision", "--no-pull",
                   "--verbose", "/bye"):
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


def test_name_with_the_tag_before_a_slash_is_explained(tmp_path: Path, capsys) -> None:
    assert main(["pull", "model:../x", "--models-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "':' starts the tag, which must come last" in error
    assert "'model:..'" not in error


def test_cli_hints_name_cli_options_not_python_keywords(fixtures: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "models"
    link_as(folder, {"model.gguf": fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf",
                     "mmproj-a.gguf": fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf",
                     "mmproj-b.gguf": fixtures / "gguf" / "qwen25vl" / "mmproj-qwen25vl-tiny-F16.gguf"})
    existing = tmp_path / "out.gguf"
    existing.write_bytes(b"keep me")

    assert main(["run", str(folder / "model.gguf"), "Hello"]) == 1
    assert main(["quantize", str(folder / "model.gguf"), str(existing), "Q8_0"]) == 1

    ambiguous, exists = capsys.readouterr().err.splitlines()
    assert "mmproj-a.gguf, mmproj-b.gguf" in ambiguous and "--mmproj" in ambiguous and "mmproj=" not in ambiguous
    assert "--force" in exists and "overwrite=" not in exists
    assert existing.read_bytes() == b"keep me"


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


def test_run_pulls_a_model_that_is_not_in_the_store(server: RegistryServer, tmp_path: Path) -> None:
    name = f"http://{server.netloc}/{NAME}"  # the loopback registry speaks plain HTTP
    options = ["--models-dir", str(tmp_path), "--max-tokens", "4", "--temperature", "0", "--ctx-size", "256"]

    offline = cli("run", name, "--no-pull", *options, "Hello")
    assert offline.returncode == 1
    assert "is not in" in offline.stderr and "qvl-local pull" in offline.stderr
    assert server.requests == []

    pulled = cli("run", name, *options, "Hello")
    assert pulled.returncode == 0, pulled.stderr
    assert server.total_blob_bytes_sent() > 0
    again = cli("run", "qwen2vl-tiny:q8_0", "--no-pull", *options, "Hello")  # now in the store
    assert again.returncode == 0, again.stderr
    assert again.stdout == pulled.stdout


def test_serve_pulls_before_serving(server: RegistryServer, tmp_path: Path, monkeypatch) -> None:
    import qvl_local.server

    served = []
    monkeypatch.setattr(qvl_local.server, "serve", lambda model, *args, **kwargs: served.append((model, kwargs)))
    name = f"http://{server.netloc}/{NAME}"
    assert main(["serve", name, "--no-pull", "--models-dir", str(tmp_path)]) == 1
    assert served == [] and server.requests == []

    assert main(["serve", name, "--models-dir", str(tmp_path), "--ctx-size", "256"]) == 0

    (model, options), = served
    assert model.has_vision and options["model_id"] == name


def test_run_prints_figures_on_stderr_and_caps_threads(server: RegistryServer, tmp_path: Path) -> None:
    assert cli(*pull_args(server, tmp_path)).returncode == 0
    limit = MAX_THREADS_PER_CORE * available_cores()
    options = ["--models-dir", str(tmp_path), "--max-tokens", "6", "--temperature", "0", "--ctx-size", "512"]

    result = cli("run", "qwen2vl-tiny:q8_0", *options, "--threads", "100000", "Describe the weather.")

    assert result.returncode == 0, result.stderr
    warning, figures = result.stderr.splitlines()
    assert warning == (f"qvl-local: warning: 100000 threads asked on {available_cores()} cores: using {limit} "
                       f"({MAX_THREADS_PER_CORE} per core at most; more only slow the work down)")
    assert re.fullmatch(r"prompt \d+ tokens, first token after \d+\.\d\d s, 6 tokens at \d+\.\d tokens/s", figures)
    assert result.stdout.count("\n") == 1 and "tokens" not in result.stdout  # the answer alone


def test_chat_prints_figures_per_answer_only_when_verbose(server: RegistryServer, tmp_path: Path) -> None:
    assert cli(*pull_args(server, tmp_path)).returncode == 0
    options = ["--models-dir", str(tmp_path), "--max-tokens", "3", "--temperature", "0", "--ctx-size", "512"]

    quiet = cli("run", "qwen2vl-tiny:q8_0", *options, stdin="Hi\nAnd?\n")
    verbose = cli("run", "qwen2vl-tiny:q8_0", *options, "--verbose", stdin="Hi\nAnd?\n")

    assert quiet.returncode == verbose.returncode == 0
    assert quiet.stderr == ""
    figures = verbose.stderr.splitlines()
    assert len(figures) == 2  # one line per answer
    assert all(re.fullmatch(r"prompt \d+ tokens, first token after \d+\.\d\d s, 3 tokens at \d+\.\d tokens/s", line)
               for line in figures), figures
    assert verbose.stdout == quiet.stdout


def test_answer_figures_count_tokens_not_held_back_text() -> None:
    stats = AnswerStats(prompt_tokens=12, started=0.0)
    assert stats.summary() == "prompt 12 tokens, no new tokens"
    stats.record(5)
    stats.first_token_at, stats.last_token_at = 1.5, 1.5
    stats.record(-1)  # text released at the end: no token
    assert stats.generated == 1 and stats.summary() == "prompt 12 tokens, first token after 1.50 s, 1 token"
    stats.record(6)
    stats.record(7)
    stats.first_token_at, stats.last_token_at = 1.5, 2.5
    assert stats.summary() == "prompt 12 tokens, first token after 1.50 s, 3 tokens at 2.0 tokens/s"


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
