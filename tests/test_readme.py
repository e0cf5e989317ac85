"""README truth (issue 16, item 10): the commands it documents exist, CI runs the test commands it
shows, and the model names in its examples are real ones."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from qvl_local.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _subcommands() -> set[str]:
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return set(commands.choices)


def test_every_documented_subcommand_exists() -> None:
    documented = set(re.findall(r"qvl-local (\w[\w-]*)", README))
    assert documented, "the README documents no command"
    assert documented <= _subcommands(), documented - _subcommands()


def test_ci_runs_the_readme_test_commands_with_one_install() -> None:
    block = _section("Test").split("```bash\n", 1)[1].split("```", 1)[0]
    readme_commands = [line.split() for line in block.strip().splitlines()]
    ci_commands = [line.split() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
                   if line.startswith("python3 -m pip install") or line.startswith("python3 -m pytest")]

    def essence(command: list[str]) -> list[str]:  # `python3 -m pip install --quiet X` is `pip install X`
        words = [word for word in command if word != "--quiet"]
        return words[2:] if words[:2] == ["python3", "-m"] else words

    assert [essence(c) for c in ci_commands] == [essence(c) for c in readme_commands]
    assert sum(command[:2] == ["pip", "install"] for command in readme_commands) == 1


def test_examples_name_models_that_exist() -> None:
    # Ollama's library has Qwen2.5-VL (`qwen2.5vl`) and Qwen3-VL, but no Qwen2-VL.
    assert "qwen2-vl:" not in README
    assert "qwen2.5vl:3b" in _section("The main job")


def test_intro_and_python_api_name_every_supported_family() -> None:
    families = re.findall(r"^\| (Qwen[\d.]+-VL)\b", _section("Supported models"), flags=re.MULTILINE)
    assert set(families) == {"Qwen2-VL", "Qwen2.5-VL", "Qwen3-VL"}
    intro = README.split("\n## ", 1)[0]
    for family in families:
        assert family in intro and family in _section("Python API"), family
