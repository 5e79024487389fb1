"""Fixtures for the dev-only machinery's tests; the anvil helpers live in tests/chain/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "anvil"
    path.mkdir()
    return path
