"""Fixtures for compute jobs: the chain fixtures (a real anvil, the session's deployment, funded
managed wallets), a world-traversable work folder for sandboxes, and fake runners."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.chain.conftest import _session_chain, accounts, anvil, chain, deployment, on_chain, people, w3  # noqa: F401

HOSTILE = Path(__file__).parent / "hostile"
# A value planted in the private data: it must never appear in anything released or logged.
CANARY = "zz-canary-7f3a"


def training_csv(rows: int = 400, seed: int = 7) -> bytes:
    """A learnable table: ``label`` is true when ``dose + 0.5*age_scaled`` is high, with noise."""
    rng = np.random.default_rng(seed)
    lines = ["age,dose,site,score,label"]
    for i in range(rows):
        age = int(rng.integers(20, 80))
        dose = float(rng.uniform(0, 10))
        site = CANARY if i == 3 else ["north", "south", "east"][int(rng.integers(0, 3))]
        signal = dose / 10 + 0.5 * (age - 20) / 60 + rng.normal(0, 0.1)
        score = round(20 + 60 * signal, 3)
        lines.append(f"{age},{dose:.3f},{site},{score},{'true' if signal > 0.75 else 'false'}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def compute_settings(settings):
    """Sandboxes work under a folder the unprivileged sandbox uid can traverse (pytest's tmp_path
    is 0700), one per test, removed afterwards."""
    base = Path(tempfile.gettempdir()) / "ppdx-compute-tests"
    base.mkdir(mode=0o711, exist_ok=True)
    os.chmod(base, 0o711)  # noqa: S103  (traversable, not listable, by the sandbox uid)
    work = base / uuid.uuid4().hex
    settings.COMPUTE_WORK_DIR = str(work)
    settings.COMPUTE_THREADS = 2
    yield settings
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def fake_runner(compute_settings):
    """``fake_runner("sleep_forever")`` makes the sandbox run that hostile program (from
    tests/compute_to_data/hostile/) instead of the trusted runner."""
    made: list[Path] = []

    def install(name: str, source: str | None = None) -> Path:
        root = Path(compute_settings.COMPUTE_WORK_DIR).parent / f"runner-{uuid.uuid4().hex}"
        root.mkdir(mode=0o755)
        (root / "__init__.py").write_text("")
        body = source if source is not None else (HOSTILE / f"{name}.py").read_text()
        (root / "__main__.py").write_text(body)
        for p in (root, root / "__init__.py", root / "__main__.py"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        compute_settings.COMPUTE_RUNNER_DIR = str(root)
        made.append(root)
        return root

    yield install
    for root in made:
        shutil.rmtree(root, ignore_errors=True)
