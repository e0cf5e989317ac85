"""Shared test fixtures: where the golden files live and how their absence is reported."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


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
