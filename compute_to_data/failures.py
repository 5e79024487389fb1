"""Why a job ended without results: one fixed table, so what a buyer reads never carries text from
the data, a library's exception or the runner, and never depends on one row.

Each failure has a stable code, the status it ends the job in, who caused it, the sentence the
buyer and the provider see (filled only with public settings such as a limit's size), and what
happens to the payment and the epsilon once the runner had read the data (``after_data``):

- ``charge``: whether this failure happens may depend on the data or on what the buyer gave (a
  row the runner cannot use, a limit the parameters hit, a runner crash, a manifest the runner
  wrote): the release of "it failed" is itself about the data, so the reservation is charged in
  full and the receipt recorded. A buyer must not be able to turn a data-dependent failure into a
  free retry. ``runner_error`` is here: a crash of the runner may be caused by a value in a row, and
  nothing the worker sees tells a crash on a row from a bug, so it stays charged. So is
  ``output_rejected``: the worker refused what the runner wrote (an artifact its algorithm does not
  declare, a file not of its format or shape, see ``services.outputs``). Those shapes follow from
  the public parameters alone, so the trusted runner's output always passes, but code that is not
  ours could choose to be refused after reading the rows: refunding it would release one bit about
  the data per job for free.
- ``refund``: the platform's own failure, whose occurrence does not depend on the data (the host's
  disk full, the sandbox not set up, the chain failing, the payment gone from a rolled-back chain, a
  moderator's decision): nothing was released to the buyer, so the payment is refunded on chain and
  the epsilon released even after the runner read the data. ``cleanup_failed`` is here: the job's
  workspace (its decrypted dataset) could not be removed and was quarantined for an operator; what
  the run stored is not published (the workspace is a mount the worker unmounts, so the program
  cannot make its removal fail).

A buyer who stops a running job (``cancelled_running``) is charged like any failure after the
data was read: the runner had read it, and the chain's receipt charges exactly the reservation
(contracts v2 cannot give epsilon back after a receipt). It also closes a timing side channel:
cancelling mid-run no longer gets the epsilon back.

Before the runner reads the data every failure releases the reservation and refunds the payment.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    code: str
    status: str  # "failed" | "cancelled"
    caused_by: str  # "buyer" | "platform" | "provider" | "limit" | "moderator"
    text: str  # a template over public settings only
    after_data: str = "charge"  # "charge" | "refund": see the module docstring


_FAILURES = [
    Failure("cancelled_before_start", "cancelled", "buyer", "Cancelled by the buyer before it started."),
    Failure("cancelled_before_runner", "cancelled", "buyer", "Cancelled by the buyer before the runner started."),
    Failure("cancelled_running", "cancelled", "buyer", "Cancelled by the buyer while running."),
    Failure("cancelled_by_moderator", "cancelled", "moderator", "Cancelled by a moderator.", "refund"),
    Failure("limit_wall_clock", "failed", "limit", "The job hit its time limit ({wall_seconds} s) and was stopped."),
    Failure("limit_cpu", "failed", "limit", "The job hit its CPU-time limit ({cpu_seconds} s) and was stopped."),
    Failure("limit_memory", "failed", "limit", "The job hit its memory limit ({memory}) and was stopped."),
    Failure("limit_file_size", "failed", "limit", "The job hit its file-size limit ({file_size}) and was stopped."),
    Failure("limit_disk", "failed", "limit", "The job hit its disk limit ({disk}) and was stopped."),
    Failure("limit_processes", "failed", "limit", "The job hit its process limit ({processes}) and was stopped."),
    Failure("no_sandbox", "failed", "platform", "No sandbox was available on the worker (platform error).", "refund"),
    Failure(
        "sandbox_setup",
        "failed",
        "platform",
        "The sandbox could not be set up on the worker (platform error).",
        "refund",
    ),
    Failure(
        "disk_full",
        "failed",
        "platform",
        "The worker's disk was full, so the job could not finish (platform error; not the job's own disk limit).",
        "refund",
    ),
    Failure("chain_error", "failed", "platform", "The blockchain could not be reached (platform error).", "refund"),
    Failure(
        "order_vanished",
        "failed",
        "platform",
        "The payment is no longer on the chain (the chain was rolled back), so nothing was charged.",
        "refund",
    ),
    Failure(
        "order_expired",
        "failed",
        "platform",
        "The payment passed its deadline on chain before the job was settled; reclaim it from the order page.",
        "refund",
    ),
    Failure("dataset_mismatch", "failed", "platform", "The stored dataset did not match its commitment.", "refund"),
    Failure("dataset_unreadable", "failed", "provider", "The dataset's file could not be read as declared."),
    Failure("buyer_input", "failed", "buyer", "The runner could not use the evaluation file or parameters given."),
    Failure("runner_error", "failed", "platform", "The runner stopped with an error (platform error)."),
    # Kept for the jobs that ended with it: the worker's output checks now fail as ``output_rejected``.
    Failure("publish_failed", "failed", "platform", "Publishing the results failed (platform error)."),
    Failure(
        "output_rejected",
        "failed",
        "platform",
        "The runner's results were not what its algorithm releases, so nothing was published.",
        "charge",
    ),
    Failure(
        "cleanup_failed",
        "failed",
        "platform",
        "The worker could not clean up after the job, so nothing was published (platform error).",
        "refund",
    ),
    Failure("platform", "failed", "platform", "The platform failed while running the job (platform error)."),
    Failure("worker_lost", "failed", "platform", "The worker running the job stopped (platform error)."),
]
FAILURES: dict[str, Failure] = {f.code: f for f in _FAILURES}
LIMIT_CODES = {
    "wall_clock": "limit_wall_clock",
    "cpu": "limit_cpu",
    "memory": "limit_memory",
    "file_size": "limit_file_size",
    "disk": "limit_disk",
    "processes": "limit_processes",
}
# The host's file system is out of room (or of the worker user's quota): the platform's, never the
# job's own disk limit, which the sandbox measures and reports as ``limit_disk``.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """True for an ``OSError`` saying the disk (or the quota) is full, wherever it is wrapped."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


def failure_text(code: str) -> str:
    """The sentence for ``code`` with the settings' public limits filled in."""
    from django.conf import settings

    from compute_to_data.sandbox import human_bytes

    failure = FAILURES.get(code) or FAILURES["platform"]
    return failure.text.format(
        wall_seconds=settings.COMPUTE_WALL_SECONDS,
        cpu_seconds=settings.COMPUTE_CPU_SECONDS,
        memory=human_bytes(settings.COMPUTE_MEMORY_MB << 20),
        file_size=human_bytes(settings.COMPUTE_FILE_SIZE_MB << 20),
        disk=human_bytes(settings.COMPUTE_DISK_MB << 20),
        processes=settings.COMPUTE_PROCESSES,
    )


def failure_for_run(*, limit: str | None, runner_error_code: str | None, host_disk_full: bool = False) -> str:
    """The failure code of a sandbox run that did not succeed: a limit by its name, a runner error
    by its (fixed) code, anything else a platform error. ``host_disk_full`` (the worker measured its
    own file system out of room after the run) turns a runner that crashed (no limit hit, no
    refusal of the data or parameters) into ``disk_full``: it could not write because the host had
    no room left, the platform's failure. The job's own disk limit stays ``limit_disk``."""
    if limit == "cancelled":
        return "cancelled_running"
    if limit in LIMIT_CODES:
        return LIMIT_CODES[limit]
    if runner_error_code == "invalid_data":
        return "dataset_unreadable"
    if runner_error_code == "invalid_parameters":
        return "buyer_input"
    if host_disk_full:
        return "disk_full"
    return "runner_error"
