"""Runs the standalone C++ kernel tests: native, and cross-compiled for aarch64 under qemu (NEON path)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "cpp" / "run_neon_tests.sh"
TOOLS = ("aarch64-linux-gnu-g++", "qemu-aarch64", "cmake")


@pytest.mark.slow
def test_kernel_tests_native_and_neon_under_qemu() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        message = f"missing {', '.join(missing)} (apt-get install -y g++-aarch64-linux-gnu qemu-user cmake)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # The native, NEON and forced-scalar runs each end with a clean summary line.
    assert len(re.findall(r"^\d+ checks, 0 failed$", output, flags=re.MULTILINE)) == 3, output[-3000:]
