"""Why a job ended without results: one fixed table, so what a buyer reads never carries text from
the data, a library's exception or the runner, and never depends on one row.

Each failure has a stable code, the status it ends the job in, who caused it, and the sentence the
buyer and the provider see (filled only with public settings such as a limit's size). The budget
and refund rule follow from the job's state when it ended (``compute_to_data.services.jobs``): a job
that ends before the runner reads the data has its reservation released and its payment refunded;
once the runner has read the data, the reservation is charged in full whatever the cause, because
the release of "it failed" must not depend on the data either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    code: str
    status: str  # "failed" | "cancelled"
    caused_by: str  # "buyer" | "platform" | "provider" | "limit"
    text: str  # a template over public settings only


_FAILURES = [
    Failure("cancelled_before_start", "cancelled", "buyer", "Cancelled by the buyer before it started."),
    Failure("cancelled_before_runner", "cancelled", "buyer", "Cancelled by the buyer before the runner started."),
    Failure("cancelled_running", "cancelled", "buyer", "Cancelled by the buyer while running."),
    Failure("limit_wall_clock", "failed", "limit", "The job hit its time limit ({wall_seconds} s) and was stopped."),
    Failure("limit_cpu", "failed", "limit", "The job hit its CPU-time limit ({cpu_seconds} s) and was stopped."),
    Failure("limit_memory", "failed", "limit", "The job hit its memory limit ({memory}) and was stopped."),
    Failure("limit_file_size", "failed", "limit", "The job hit its file-size limit ({file_size}) and was stopped."),
    Failure("limit_disk", "failed", "limit", "The job hit its disk limit ({disk}) and was stopped."),
    Failure("limit_processes", "failed", "limit", "The job hit its process limit ({processes}) and was stopped."),
    Failure("no_sandbox", "failed", "platform", "No sandbox was available on the worker (platform error)."),
    Failure("dataset_mismatch", "failed", "platform", "The stored dataset did not match its commitment."),
    Failure("dataset_unreadable", "failed", "provider", "The dataset's file could not be read as declared."),
    Failure("buyer_input", "failed", "buyer", "The runner could not use the evaluation file or parameters given."),
    Failure("runner_error", "failed", "platform", "The runner stopped with an error (platform error)."),
    Failure("publish_failed", "failed", "platform", "Publishing the results failed (platform error)."),
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


def failure_text(code: str) -> str:
    """The sentence for ``code`` with the settings' public limits filled in."""
    from django.conf import settings

    from compute_to_data.sandbox import _human_bytes

    failure = FAILURES.get(code) or FAILURES["platform"]
    return failure.text.format(
        wall_seconds=settings.COMPUTE_WALL_SECONDS,
        cpu_seconds=settings.COMPUTE_CPU_SECONDS,
        memory=_human_bytes(settings.COMPUTE_MEMORY_MB << 20),
        file_size=_human_bytes(settings.COMPUTE_FILE_SIZE_MB << 20),
        disk=_human_bytes(settings.COMPUTE_DISK_MB << 20),
        processes=settings.COMPUTE_PROCESSES,
    )


def failure_for_run(*, limit: str | None, runner_error_code: str | None) -> str:
    """The failure code of a sandbox run that did not succeed: a limit by its name, a runner error
    by its (fixed) code, anything else a platform error."""
    if limit == "cancelled":
        return "cancelled_running"
    if limit in LIMIT_CODES:
        return LIMIT_CODES[limit]
    if runner_error_code == "invalid_data":
        return "dataset_unreadable"
    if runner_error_code == "invalid_parameters":
        return "buyer_input"
    return "runner_error"
