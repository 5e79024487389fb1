"""The integrator client is fully typed: ``mypy --strict`` passes on it (it ships ``py.typed``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_package_passes_mypy_strict(tmp_path):
    assert (ROOT / "marketplace_client" / "py.typed").exists()
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "marketplace_client"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
