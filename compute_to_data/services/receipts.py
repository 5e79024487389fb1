"""A job's receipt, built in one place: the four hashes and the epsilon that its order records on
chain (``ReceiptRecorded``), that the API shows the buyer and that verification compares with the
chain. Nothing here reads the chain or writes a row.

- ``dataset_hash``: the dataset's public commitment, SHA-256(salt || file), as the job ran on it.
- ``algorithm_hash``: SHA-256 of the runner code that ran (``runner_code_hash``).
- ``params_hash``: what the order committed to, SHA-256 of the algorithm and its parameters.
- ``result_hash``: SHA-256 over the released artifacts (``result_hash_of``), or of the failure
  record for a job that released nothing (``failure_hash``).
- ``epsilon_spent``: the job's whole reservation: a receipt charges exactly it on chain (contracts
  v2), whatever the accountant reported."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

from compute_to_data.models import ComputeJob


@dataclass(frozen=True)
class Receipt:
    dataset_hash: str
    algorithm_hash: str
    params_hash: str
    result_hash: str
    epsilon_spent: Decimal


def receipt_of(job: ComputeJob) -> Receipt:
    """The receipt ``job``'s order records on chain. A job that has not run yet is hashed with the
    runner as it is now, a job that released nothing with its failure record."""
    return Receipt(
        dataset_hash=job.dataset_hash,
        algorithm_hash=job.runner_hash or runner_code_hash(),
        params_hash=job.params_hash,
        result_hash=job.result_hash or failure_hash(job, job.status, job.reason),
        epsilon_spent=job.epsilon,
    )


def params_hash(algorithm: str, parameters: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the algorithm and its normalised parameters: what an order
    commits to on chain (its ``algorithmHash``) and the receipt's ``paramsHash``."""
    from chain.services.orders import algorithm_hash

    return algorithm_hash(algorithm, parameters)


def result_hash_of(artifacts: list[tuple[str, str]]) -> str:
    """The receipt's result hash: SHA-256 of the canonical JSON list of [name, sha256] pairs."""
    canonical = json.dumps(sorted([list(a) for a in artifacts]), separators=(",", ":"))
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


def failure_hash(job: ComputeJob, status: str, reason: str) -> str:
    """Result hash of a job that ended without results: the hash of what it did release (its status
    and reason), so even a failed job's receipt names what the buyer got."""
    record = {"job": job.pk, "status": status, "reason": reason}
    return "0x" + hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _runner_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


@functools.lru_cache(maxsize=4)
def _runner_hash_cached(root: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    base = Path(root)
    for path in _runner_files(base):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "0x" + digest.hexdigest()


def runner_code_hash() -> str:
    """SHA-256 over the runner package's source files (relative path and bytes, in order): the
    code that ran, recorded in the receipt as its ``algorithmHash``."""
    root = Path(settings.COMPUTE_RUNNER_DIR)
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in _runner_files(root))
    return _runner_hash_cached(str(root), stamp)
