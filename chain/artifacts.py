"""Compiled contracts from ``chain/artifacts/<Name>.json`` (written by ``node chain/build.mjs``).

Artifacts are committed, so running the app needs no compiler. ``source_hash()`` recomputes in
Python the hash the build records in each artifact (scheme ``ppdx-contracts-v1``, see
``chain/build.mjs``), so a test can tell an artifact that is stale against its sources."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = REPO_ROOT / "chain" / "contracts"
ARTIFACTS_DIR = REPO_ROOT / "chain" / "artifacts"
BUILD_SCRIPT = REPO_ROOT / "chain" / "build.mjs"
PACKAGE_JSON = REPO_ROOT / "package.json"

#: The contracts the build writes an artifact for.
ARTIFACT_NAMES = ("MockStablecoin", "DataNFT", "Datatoken", "DataFactory", "ReentrantToken")


class ArtifactNotFound(FileNotFoundError):
    """No compiled artifact of that name: run ``npm ci && node chain/build.mjs``."""


@functools.cache
def load_artifact(name: str) -> dict[str, Any]:
    """The artifact ``{contractName, abi, bytecode, deployedBytecode, sourceHash, ...}`` of a contract.

    Cached: callers must not mutate the returned dict."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactNotFound(f"no artifact {path}: run `npm ci && node chain/build.mjs`") from None


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_hash() -> str:
    """The ``sourceHash`` a fresh build would record, from the sources on disk (same for every artifact)."""
    text = "ppdx-contracts-v1\n"
    files = sorted(path.relative_to(REPO_ROOT).as_posix() for path in CONTRACTS_DIR.rglob("*.sol"))
    for rel in files:
        text += f"{rel}\n{_sha256_hex((REPO_ROOT / rel).read_bytes())}\n"
    text += f"chain/build.mjs\n{_sha256_hex(BUILD_SCRIPT.read_bytes())}\n"
    dev_dependencies = json.loads(PACKAGE_JSON.read_text())["devDependencies"]
    for package in sorted(dev_dependencies):
        text += f"{package}@{dev_dependencies[package]}\n"
    return _sha256_hex(text.encode())


def artifact_source_hash(name: str) -> str:
    """The source hash recorded in an artifact (compare with ``source_hash()``)."""
    return load_artifact(name)["sourceHash"]


def artifact_is_stale(name: str) -> bool:
    return artifact_source_hash(name) != source_hash()
