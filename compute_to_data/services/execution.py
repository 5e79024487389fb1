"""Running a queued job on a worker: claim it, provision a private workspace with the decrypted
dataset, run the trusted runner in a fresh sandbox while streaming its progress into the job row,
publish what it released, and end the job. Plus the reaper for jobs whose worker died.

Only this module decrypts a dataset for compute, and only into a job's own 0700 workspace that is
removed when the run ends (the reaper removes the workspace of a worker that died)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import psutil
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import storages
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from chain.client import ChainUnavailable
from chain.models import ChainTransaction
from common.tasks import enqueue as enqueue_task
from compute_to_data import sandbox
from compute_to_data.failures import failure_for_run, is_disk_full
from compute_to_data.models import ComputeJob, JobArtifact, JobLogEntry
from compute_to_data.runner import params as runner_params
from compute_to_data.services import budget as budget_services
from compute_to_data.services import outputs
from compute_to_data.services.jobs import (
    _locked,
    job_fail,
    job_fail_cancelled,
    job_log,
    job_settle_later,
    job_transition,
)
from compute_to_data.services.receipts import result_hash_of, runner_code_hash
from marketplace.services import datasets as dataset_services
from marketplace.services.storage import encrypted_file_chunks

logger = logging.getLogger(__name__)
T = TypeVar("T")

MANIFEST = outputs.MANIFEST
RUNNER_ERROR_CODES = frozenset({"invalid_parameters", "invalid_data", "internal"})
# Released durations are rounded up to this many seconds, so run time tells little about the data.
TIME_BUCKET_SECONDS = 60
# A job's phases in the order they come; a progress event may only move forward along them, and
# only through the runner's own (the worker sets provisioning, publishing and finished).
PHASES = ("provisioning", "loading", "training", "evaluating", "writing", "publishing", "finished")
RUNNER_PHASES = frozenset({"loading", "training", "evaluating", "writing"})
# Share of the progress bar for each phase before training reports steps.
PHASE_PERCENT = {"provisioning": 2, "loading": 5, "training": 5, "evaluating": 92, "writing": 95, "publishing": 97}
# Below 100 until the worker itself finishes the job.
MAX_RUNNING_PERCENT = 99
# Bounds of the counts a progress event may carry (the parameters allow at most 50 epochs).
MAX_EPOCHS = 1_000
MAX_STEPS = 10**9
# The log lines the trusted runner writes (fixed templates over public values): only these reach
# the job's log, which the buyer reads; anything else goes to the operators' log.
_NUMBER = r"[0-9][0-9.e+-]{0,15}"
RUNNER_LOG_LINES = tuple(
    re.compile(pattern)
    for pattern in (
        r"Running (?:" + "|".join(re.escape(name) for name in runner_params.ALGORITHMS) + r")\.",
        r"Data loaded\.",
        r"Data loaded and preprocessed from the declared schema\.",
        rf"Noise calibrated with the (?:RDP|PRV) accountant: noise multiplier {_NUMBER}, sample rate {_NUMBER}, "
        r"[0-9]{1,12} steps\.",
        r"Done; artifacts and manifest written\.",
    )
)
# At most one operator log line per this many seconds about dropped events of one job.
DROPPED_LOG_SECONDS = 10.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def operator_text(text: Any, limit: int = 500) -> str:
    """Text of the runner or the program as the operators' log shows it: control characters and
    bidirectional overrides (terminal escapes, forged lines) replaced, cut to ``limit``."""
    return _CONTROL.sub("?", str(text)[:limit])


# --- configuration ------------------------------------------------------------------------------


def sandbox_config() -> sandbox.SandboxConfig:
    return sandbox.SandboxConfig(
        python=settings.COMPUTE_SANDBOX_PYTHON or None,
        runner_dir=str(settings.COMPUTE_RUNNER_DIR),
        uid_base=settings.COMPUTE_SANDBOX_UID_BASE,
        uid_count=settings.COMPUTE_SANDBOX_UID_COUNT,
        lease_dir=settings.COMPUTE_SANDBOX_LEASE_DIR,
        quarantine_dir=settings.COMPUTE_SANDBOX_QUARANTINE_DIR,
        require_root_mode=settings.COMPUTE_SANDBOX_REQUIRE_ROOT_MODE,
        threads=settings.COMPUTE_THREADS,
    )


def sandbox_backend() -> sandbox.SandboxBackend:
    """The backend every job runs in, named by ``COMPUTE_SANDBOX_BACKEND``: bubblewrap, unless a test or a
    benchmark chose the unsandboxed one (production settings refuse it)."""
    try:
        return sandbox.backend_named(settings.COMPUTE_SANDBOX_BACKEND)
    except KeyError as exc:
        raise ImproperlyConfigured(f"COMPUTE_SANDBOX_BACKEND: {exc.args[0]}") from None


def sandbox_limits() -> sandbox.Limits:
    return sandbox.Limits(
        memory_bytes=settings.COMPUTE_MEMORY_MB << 20,
        cpu_seconds=settings.COMPUTE_CPU_SECONDS,
        file_size_bytes=settings.COMPUTE_FILE_SIZE_MB << 20,
        processes=settings.COMPUTE_PROCESSES,
        open_files=settings.COMPUTE_OPEN_FILES,
        wall_seconds=settings.COMPUTE_WALL_SECONDS,
        disk_bytes=settings.COMPUTE_DISK_MB << 20,
    )


def results_storage():
    return storages["results"]


# --- the monitor: progress, logs, heartbeat and cancellation between runner and database -----------


@dataclass
class _Monitor:
    """Collects the runner's events (from the sandbox's reader thread) and, in its own thread,
    writes them to the job row every half second together with a heartbeat, and notices a
    cancellation request. The runner never waits on the database."""

    job_id: int
    interval: float = 0.5
    # The worker that claimed the job ("host:pid"): heartbeats go only to a job still held by it.
    worker: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Set once the job is no longer held by ``worker`` (it looked dead and was taken over).
    lost: threading.Event = field(default_factory=threading.Event)
    error_code: str | None = None
    # The job's reserved epsilon: no progress event may show more.
    epsilon: float = math.inf
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dirty: bool = False
    _thread: threading.Thread | None = None
    _dropped: int = 0
    _dropped_logged_at: float = -math.inf

    def on_event(self, event: dict[str, Any]) -> None:
        """Take one event of the runner. Never raises for what an event holds: anything that is not
        what the trusted runner sends is dropped (and counted in the operators' log)."""
        kind = event.get("event") if isinstance(event, dict) else None
        with self._lock:
            if kind == "progress":
                progress = _progress_from(event, previous=self.progress, epsilon_max=self.epsilon)
                if progress is None:
                    self._drop(event)
                else:
                    self.progress = progress
                    self._dirty = True
            elif kind == "log" and _runner_log_line(event.get("message")):
                self.logs.append(event["message"])
                self._dirty = True
            elif kind == "error" and self.error_code is None:
                # The buyer sees a fixed sentence for the failure, never the runner's own text. The
                # trusted runner sends one error event, its last: the first one counts.
                code = event.get("code")
                self.error_code = code if isinstance(code, str) and code in RUNNER_ERROR_CODES else "internal"
                logger.info(
                    "job %s: runner error %s: %s",
                    self.job_id,
                    operator_text(code, 40),
                    operator_text(event.get("message")),
                )
            else:
                self._drop(event)

    def _drop(self, event: dict[str, Any]) -> None:
        """Count an event that was not taken; say so in the operators' log at most every
        ``DROPPED_LOG_SECONDS`` (a runner could send thousands). Call with the lock held."""
        self._dropped += 1
        now = time.monotonic()
        if now - self._dropped_logged_at >= DROPPED_LOG_SECONDS:
            self._dropped_logged_at = now
            logger.warning(
                "job %s: dropped %s event(s) of the runner that were not what it sends; the last: %s",
                self.job_id,
                self._dropped,
                operator_text(event, 300),
            )
            self._dropped = 0

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.progress = {
                **self.progress,
                "phase": phase,
                "percent": min(max(self.progress.get("percent", 0), PHASE_PERCENT.get(phase, 0)), MAX_RUNNING_PERCENT),
            }
            self._dirty = True
        self.flush()

    def should_cancel(self) -> bool:
        """Called by the sandbox about four times a second. A job taken over by another worker
        raises ``JobTakenOver``: the sandbox is killed, and nothing of this run touches the job."""
        if self.lost.is_set():
            raise JobTakenOver(f"job {self.job_id} is no longer held by {self.worker}")
        return self.cancelled.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"job-{self.job_id}-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.flush()
        except Exception:  # the job's end is already written (or its restart decided): logs only
            logger.warning("job %s: could not write the last progress", self.job_id, exc_info=True)

    def _run(self) -> None:
        last_beat = 0.0
        try:
            while not self._stop.wait(self.interval):
                try:
                    if self._dirty or time.monotonic() - last_beat >= settings.COMPUTE_HEARTBEAT_SECONDS:
                        self.flush()
                        last_beat = time.monotonic()
                except Exception:  # a busy database must not kill the run; the next tick retries
                    logger.warning("job %s: could not write progress", self.job_id, exc_info=True)
        finally:
            connection.close()

    def flush(self) -> None:
        """Write what was collected, on a fresh connection after a dropped one (a database blip
        must not stop the heartbeat, or the job would look abandoned)."""
        with self._lock:
            progress, logs, self.logs, self._dirty = dict(self.progress), self.logs, [], False
        try:
            db_retry(lambda: self._write(progress, logs), what=f"job {self.job_id} progress")
        except BaseException:
            with self._lock:  # kept for the next flush
                self.logs[:0] = logs
                self._dirty = True
            raise
        if self.lost.is_set() and threading.current_thread() is not self._thread:
            raise JobTakenOver(f"job {self.job_id} is no longer held by {self.worker}")

    def _write(self, progress: dict[str, Any], logs: list[str]) -> None:
        jobs = ComputeJob.objects.filter(pk=self.job_id)
        if self.worker:
            jobs = jobs.filter(worker=self.worker)
        with transaction.atomic():
            held = jobs.update(heartbeat_at=timezone.now())
            if self.worker and not held:
                self.lost.set()
                return
            if progress:
                # Only while the job runs: the last flush (``stop``) must not turn a job's final
                # progress ("finished", or its failure) back into the phase the run was in.
                jobs.filter(status__in=ComputeJob.ACTIVE).update(progress=progress)
            if logs:
                JobLogEntry.objects.bulk_create(
                    [JobLogEntry(job_id=self.job_id, source=JobLogEntry.Source.RUNNER, message=m) for m in logs]
                )
        if ComputeJob.objects.filter(pk=self.job_id, cancel_requested_at__isnull=False).exists():
            self.cancelled.set()


class JobTakenOver(Exception):
    """This run's job was given to another worker (this one looked dead): stop, write nothing."""


# Errors of a dropped or refused database connection (a restart, a terminated backend, a failover).
DB_ERRORS = (OperationalError, InterfaceError)
DB_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


def db_retry(fn: Callable[[], T], *, what: str) -> T:
    """``fn()``, tried again on a fresh connection while the database connection drops (about 16 s
    in all), then the error. Only outside a transaction: inside one the work is lost with the
    connection, and the caller's own retry must redo it."""
    for delay in (*DB_RETRY_DELAYS, None):
        try:
            return fn()
        except DB_ERRORS:
            if delay is None or connection.in_atomic_block:
                raise
            logger.warning("%s: the database connection dropped; retrying in %.1f s", what, delay, exc_info=True)
            connection.close()
            time.sleep(delay)
    raise AssertionError("unreachable")


def _count(value: Any, high: int) -> int | None:
    """A count as the runner sends it: an int (not a bool, not a float) from 0 to ``high``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high else None


def _progress_from(event: dict[str, Any], *, previous: dict[str, Any], epsilon_max: float) -> dict[str, Any] | None:
    """The job's progress after the runner's progress ``event``, or None when the event is not one
    the trusted runner sends: a phase of the runner's that does not go back from ``previous``'s,
    counts as ints within bounds (step <= steps, epoch <= epochs), and a finite epsilon within
    [0, ``epsilon_max``] (the reservation). The percent never goes down and stays below 100."""
    phase = event.get("phase")
    if not isinstance(phase, str) or phase not in RUNNER_PHASES:
        return None
    current = previous.get("phase")
    if current in PHASES and PHASES.index(phase) < PHASES.index(current):
        return None
    epoch, epochs = _count(event.get("epoch"), MAX_EPOCHS), _count(event.get("epochs"), MAX_EPOCHS)
    step, steps = _count(event.get("step"), MAX_STEPS), _count(event.get("steps"), MAX_STEPS)
    if epoch is None or epochs is None or step is None or steps is None or epoch > epochs or step > steps:
        return None
    epsilon = event.get("epsilon")
    if not isinstance(epsilon, int | float) or isinstance(epsilon, bool) or not math.isfinite(epsilon):
        return None
    if not 0 <= epsilon <= epsilon_max + 1e-9:
        return None
    percent = PHASE_PERCENT[phase]
    if phase == "training" and steps > 0:
        percent = 5 + int(87 * step / steps)
    return {
        "phase": phase,
        "epoch": epoch,
        "epochs": epochs,
        "step": step,
        "steps": steps,
        "epsilon": round(float(epsilon), 6),
        "percent": min(max(percent, int(previous.get("percent", 0))), MAX_RUNNING_PERCENT),
    }


def _runner_log_line(message: Any) -> bool:
    """Whether ``message`` is one of the trusted runner's log lines (``RUNNER_LOG_LINES``)."""
    if not isinstance(message, str) or len(message) > 300:
        return False
    return any(pattern.fullmatch(message) for pattern in RUNNER_LOG_LINES)


# --- running a job ---------------------------------------------------------------------------------


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_is_dead(worker: str, *, last_seen: datetime | None) -> bool | None:
    """Whether the process ``worker`` ("host:pid", as ``_worker_name`` wrote it) is gone: True when
    it ran on this host and its pid is free, a zombie, or now names a process started after
    ``last_seen`` (the job's last heartbeat, when the old one was alive); None when it ran on another
    host (only its heartbeat can tell) or cannot be inspected."""
    host, _, pid = worker.rpartition(":")
    if not host or host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        process = psutil.Process(int(pid))
        if last_seen is not None and process.create_time() > last_seen.timestamp():
            return True
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return None


def _worker_gone(job: ComputeJob, stale: datetime) -> bool:
    """The job's worker died (seen at once on this host) or went silent past the heartbeat timeout."""
    if worker_is_dead(job.worker, last_seen=job.heartbeat_at):
        return True
    return job.heartbeat_at is None or job.heartbeat_at < stale


def _job_restart(job: ComputeJob, *, why: str, enqueue: bool, exhausted: str = "worker_lost") -> str:
    """A job hit by its worker's death (or by its database connection dropping) runs again from the
    start: back to queued, with what a dead attempt stored deleted, its budget still reserved
    (neither charged nor released, as nothing was released) and its attempts counted. After
    ``COMPUTE_MAX_ATTEMPTS`` it fails for ``exhausted`` by the usual rules. Returns "requeued" or
    "failed"; the caller removes the old workspace (``_remove_workspace``) after commit.

    Call inside ``transaction.atomic`` with the job row locked."""
    if job.attempts >= settings.COMPUTE_MAX_ATTEMPTS:
        logger.warning("job %s: %s; attempt %s was the last, failed", job.pk, why, job.attempts)
        job_fail(job, exhausted, limit="worker_lost" if exhausted == "worker_lost" else "")
        return "failed"
    _delete_stored(list(JobArtifact.objects.filter(job=job)))
    job_transition(
        job,
        ComputeJob.Status.QUEUED,
        worker="",
        workspace="",
        progress={},
        heartbeat_at=None,
        queued_at=timezone.now(),
        runner_seconds=None,
        result_hash="",
    )
    logger.warning("job %s: %s; running it again (attempt %s of %s)", job.pk, why, job.attempts + 1, _max_attempts())
    job_log(job, f"{why}; the job runs again from the start (attempt {job.attempts + 1} of {_max_attempts()}).")
    if enqueue:
        job_id = job.pk
        enqueue_task("compute_to_data.tasks.job_run_task", job_id)
    return "requeued"


def _max_attempts() -> int:
    return settings.COMPUTE_MAX_ATTEMPTS


def _claim(job_id: int) -> ComputeJob | None:
    """Take a queued job for this worker; None when it is not queued (a second delivery). A job
    held by a worker of this host that died is taken over (run again from the start): that is a
    redelivered task of a killed worker."""
    with transaction.atomic():
        job = ComputeJob.objects.select_for_update(of=("self",)).filter(pk=job_id).first()
        if job is None:
            return None
        if job.status in ComputeJob.ACTIVE and worker_is_dead(job.worker, last_seen=job.heartbeat_at):
            workspace = job.workspace
            _job_restart(job, why="The worker running the job stopped", enqueue=False)
            transaction.on_commit(lambda: _remove_workspace(workspace))
        if job.status != ComputeJob.Status.QUEUED:
            return None
        job_transition(
            job,
            ComputeJob.Status.PROVISIONING,
            attempts=job.attempts + 1,
            worker=_worker_name(),
            heartbeat_at=timezone.now(),
            progress={"phase": "provisioning", "percent": PHASE_PERCENT["provisioning"]},
        )
        job_log(job, f"Provisioning a sandbox (attempt {job.attempts}).")
    return job


def _spec(job: ComputeJob, data_name: str, paths: dict[str, str]) -> dict[str, Any]:
    return {
        "algorithm": job.algorithm,
        "parameters": job.parameters,
        "schema": job.dataset.declared_schema,
        "data_file": f"{paths['data']}/{data_name}",
        "data_format": job.dataset.file_format,
        "public_rows": int(job.dataset.public_row_count or 0),
        "holdout": _holdout(job),
        "eval_file": f"{paths['data']}/evaluation.csv" if job.evaluation_csv else None,
        "output_dir": paths["out"],
        "threads": settings.COMPUTE_THREADS,
    }


def _holdout(job: ComputeJob) -> dict[str, Any] | None:
    """The owner's holdout split, keyed by the dataset's secret (so no buyer can choose the rows)."""
    if runner_params.ALGORITHMS[job.algorithm].kind == "statistics":
        return None
    return {"fraction": job.dataset.holdout_fraction, "key": dataset_services.dataset_holdout_key(dataset=job.dataset)}


def runner_time_bucket(seconds: float) -> float:
    """A duration as released: rounded up to the next whole bucket."""
    return float(max(1, -(-int(seconds) // TIME_BUCKET_SECONDS)) * TIME_BUCKET_SECONDS)


def runner_argv(backend: sandbox.SandboxBackend, ws: sandbox.Workspace) -> list[str]:
    """The command the sandbox runs: the trusted runner on the job's spec."""
    return ["python3", "-m", "dp_runner", f"{backend.paths(ws)['data']}/spec.json"]


def _provision(job: ComputeJob, ws: sandbox.Workspace, backend: sandbox.SandboxBackend) -> dict[str, Any]:
    """Decrypt the dataset into the workspace (checking it against the commitment it was listed
    with) and write the runner's spec; returns the spec."""
    data_name = f"dataset.{job.dataset.file_format}"
    # The commitment is SHA-256(salt || file): the salt first, then the file as it streams to disk.
    digest = hashlib.sha256(dataset_services.dataset_commitment_salt(dataset=job.dataset))

    def chunks():
        for chunk in encrypted_file_chunks(job.dataset.storage_name):
            digest.update(chunk)
            yield chunk

    ws.write_input(data_name, chunks())
    if job.evaluation_csv:
        ws.write_input("evaluation.csv", [job.evaluation_csv.encode()])
    if "0x" + digest.hexdigest() != job.dataset_hash:
        raise _ProvisionError("The stored dataset does not match its commitment.")
    spec = _spec(job, data_name, backend.paths(ws))
    ws.write_input("spec.json", [json.dumps(spec).encode()])
    return spec


class _ProvisionError(Exception):
    pass


def job_run(job_id: int) -> ComputeJob | None:
    """Run a queued job to its end, in the sandbox backend of ``sandbox_backend()``. Safe to call
    twice: a job that is not queued is left alone. A database connection that drops mid-run is
    retried, and if the run cannot go on the job is queued again without charge."""
    job = db_retry(lambda: _claim(job_id), what=f"job {job_id} claim")
    if job is None:
        return None
    worker, attempt = job.worker, job.attempts
    monitor = _Monitor(job_id, worker=worker, epsilon=float(job.epsilon))
    monitor.start()
    try:
        return _run_claimed(job, monitor)
    except Exception as exc:
        lost_db = isinstance(exc, DB_ERRORS)
        if isinstance(exc, JobTakenOver):
            logger.warning("job %s: taken over by another worker; this run stopped", job_id)
        elif lost_db:
            logger.warning("job %s: the database connection dropped mid-run", job_id, exc_info=True)
        else:
            logger.exception("job %s failed in the platform", job_id)

        def end() -> ComputeJob:
            with transaction.atomic():
                job = _locked(job_id)
                if job.is_terminal or (job.worker, job.attempts) != (worker, attempt):
                    return job  # ended, or taken over by another worker: not ours to end
                if lost_db and job.status in ComputeJob.ACTIVE:
                    # Our fault, and nothing was released: run it again rather than charge for it.
                    _job_restart(job, why="The worker lost its database connection", enqueue=True, exhausted="platform")
                    return job
                if job.status == ComputeJob.Status.QUEUED:
                    job_transition(job, ComputeJob.Status.PROVISIONING)
                return job_fail(job, "platform")

        return db_retry(end, what=f"job {job_id} end")
    finally:
        monitor.stop()
        close_old_connections()


def _run_claimed(job: ComputeJob, monitor: _Monitor) -> ComputeJob:
    config = sandbox_config()
    backend = sandbox_backend()
    base = Path(settings.COMPUTE_WORK_DIR)
    try:
        backend.preflight(config)
    except sandbox.SandboxUnavailable as exc:
        logger.error("job %s: no sandbox on this worker: %s", job.pk, exc)
        return _finish_without_data(job.pk, "no_sandbox")
    started = time.monotonic()
    ended: ComputeJob | _Stored | None = None
    try:
        with sandbox.workspace(base, f"job-{job.pk}", config) as ws:
            ended = _run_in(job, monitor, backend, config, ws, started)
    except sandbox.CleanupFailed as exc:
        return _cleanup_failed(job.pk, ended, exc)
    except sandbox.SandboxUnavailable as exc:
        # The sandbox could not start (its workspace, its launcher): the runner never read a row.
        logger.error("job %s: the sandbox could not be set up: %s", job.pk, exc)
        return _finish_platform(job.pk, "sandbox_setup")
    except ChainUnavailable as exc:
        logger.error("job %s: the chain failed: %s", job.pk, exc)
        return _finish_platform(job.pk, "chain_error")
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        logger.error("job %s: the worker's disk is full: %s", job.pk, exc)
        return _finish_platform(job.pk, "disk_full")
    # Finished only now that its workspace (the decrypted dataset) is gone.
    return _finish(ended) if isinstance(ended, _Stored) else ended


def _cleanup_failed(job_id: int, ended: ComputeJob | _Stored | None, exc: sandbox.CleanupFailed) -> ComputeJob:
    """The job's workspace could not be removed (the sandbox quarantined what is left): an operator
    must look at it. A job not yet ended fails for ``cleanup_failed`` (refunded: the platform's
    failure, and nothing was published: what the run stored is removed); one that had already
    failed keeps its own failure."""
    logger.critical("job %s: its workspace could not be removed and was quarantined: %s", job_id, exc)
    if isinstance(ended, _Stored):
        _delete_stored(ended.stored)
    return _finish_platform(job_id, "cleanup_failed")


def _run_in(
    job: ComputeJob,
    monitor: _Monitor,
    backend: sandbox.SandboxBackend,
    config: sandbox.SandboxConfig,
    ws: sandbox.Workspace,
    started: float,
) -> ComputeJob | _Stored:
    """Run the job in ``ws``: a job that ended, or what it stored for ``_finish`` once the
    workspace is removed."""
    attempt = job.attempts
    ComputeJob.objects.filter(pk=job.pk).update(workspace=str(ws.root))
    try:
        _provision(job, ws, backend)
    except _ProvisionError as exc:
        logger.error("job %s: %s", job.pk, exc)
        return _finish_without_data(job.pk, "dataset_mismatch")
    with transaction.atomic():
        job = _locked(job.pk)
        if job.cancel_requested_at is not None:
            return job_fail_cancelled(job)
        # From here on the runner reads the data: the budget is spent unless the run ends for a
        # reason that does not depend on the data (compute_to_data.failures, ``after_data``).
        job = job_transition(
            job, ComputeJob.Status.RUNNING, data_touched_at=timezone.now(), runner_hash=runner_code_hash()
        )
    logger.info("job %s: sandbox ready in %.2f s", job.pk, time.monotonic() - started)
    job_log(job, "Sandbox ready; runner started.")
    outcome = backend.run(
        config=config,
        workspace=ws,
        argv=runner_argv(backend, ws),
        limits=sandbox_limits(),
        on_event=monitor.on_event,
        should_cancel=monitor.should_cancel,
    )
    monitor.flush()
    # Released coarse: the exact run time would be a side channel on the data.
    ComputeJob.objects.filter(pk=job.pk, worker=job.worker, attempts=attempt).update(
        runner_seconds=runner_time_bucket(outcome.wall_seconds)
    )
    if not outcome.ok:
        # What the runner or the sandbox said is for the operators' log only.
        logger.info(
            "job %s runner ended: limit=%s reason=%s stderr tail: %s",
            job.pk,
            outcome.limit,
            operator_text(outcome.reason),
            operator_text(outcome.stderr_tail, 4000),
        )
        # Measured by the worker, never read from the runner's words (which a buyer's evaluation
        # file could fill with "No space left on device").
        host_full = outcome.limit is None and host_disk_full(ws.root)
        code = failure_for_run(limit=outcome.limit, runner_error_code=monitor.error_code, host_disk_full=host_full)
        with transaction.atomic():
            job = _held(job.pk, monitor, attempt)
            if code == "cancelled_running":
                return job_fail_cancelled(job, running=True, limit=outcome.limit or "")
            return job_fail(job, code, limit=outcome.limit or "")
    with transaction.atomic():
        job = job_transition(_held(job.pk, monitor, attempt), ComputeJob.Status.PUBLISHING)
        job_log(job, "Runner finished.")
    monitor.set_phase("publishing")
    return _publish(job, ws, monitor, attempt)


def _held(job_id: int, monitor: _Monitor, attempt: int) -> ComputeJob:
    """The job's row, locked, while this run still holds it; ``JobTakenOver`` once the job was given
    to another worker (this one looked dead), as nothing of this run (an artifact, a charge, an end)
    may then reach the job's new attempt. Call inside ``transaction.atomic``."""
    job = _locked(job_id)
    if monitor.lost.is_set() or (monitor.worker and (job.worker, job.attempts) != (monitor.worker, attempt)):
        monitor.lost.set()
        raise JobTakenOver(f"job {job_id} is no longer held by {monitor.worker}")
    return job


# Free space under which the worker counts its file system as full: the runner that crashed then
# could not write for want of room on the host, not because of its own disk limit.
HOST_DISK_FULL_BYTES = 8 << 20


def host_disk_full(path: Path) -> bool:
    """True when the file system holding ``path`` has less than ``HOST_DISK_FULL_BYTES`` (or 1 % of
    its size, for a small one) left for an unprivileged writer."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return False
    free = stat.f_bavail * stat.f_frsize
    return free < min(HOST_DISK_FULL_BYTES, stat.f_blocks * stat.f_frsize // 100)


def _finish_platform(job_id: int, code: str) -> ComputeJob:
    """End a claimed job for a platform failure ``code`` (refunded and released by its rule), unless
    it ended meanwhile."""
    with transaction.atomic():
        job = _locked(job_id)
        if job.is_terminal:
            return job
        return job_fail(job, code)


def _finish_without_data(job_id: int, code: str) -> ComputeJob:
    with transaction.atomic():
        return job_fail(_locked(job_id), code)


# --- publishing ------------------------------------------------------------------------------------


def _release_of(job: ComputeJob) -> outputs.Release:
    """What the job's run may release, from its public inputs: the algorithm, the parameters the
    order committed to, the declared schema, the public row count and the reservation."""
    return outputs.release_expected(
        algorithm=job.algorithm,
        parameters=job.parameters,
        schema=job.dataset.declared_schema,
        public_rows=int(job.dataset.public_row_count or 0),
        epsilon=float(job.epsilon),
    )


@contextlib.contextmanager
def _output(ws: sandbox.Workspace, name: str) -> Iterator[tuple[BinaryIO, int]]:
    """``out/<name>`` opened without following links (the sandbox wrote that folder, and a link
    there must not make the worker read a host file), with its size."""
    try:
        fh = ws.open_output(name)
    except (OSError, ValueError):
        raise outputs.OutputRejected(f"The runner did not write {name} as a plain file.") from None
    with fh:
        yield fh, os.fstat(fh.fileno()).st_size


def _store(job: ComputeJob, fh: BinaryIO, name: str, kind: str, description: str) -> JobArtifact:
    """Copy the open output ``fh`` (from its start) into the results storage, hashing it."""
    digest = hashlib.sha256()
    storage = results_storage()
    fh.seek(0)
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    size = fh.tell()
    fh.seek(0)
    target = storage.get_available_name(f"job-{job.pk}/{name}")
    try:
        stored = storage.save(target, File(fh, name=name))
    except BaseException:
        # A save that failed half-way (a full disk) leaves no partial file behind.
        with contextlib.suppress(Exception):
            if storage.exists(target):
                storage.delete(target)
        raise
    return JobArtifact.objects.create(
        job=job,
        name=name,
        kind=kind,
        description=description[:500],
        size=size,
        sha256=digest.hexdigest(),
        storage_name=stored,
    )


@dataclass
class _Stored:
    """What a run stored, to publish once its workspace is removed (``_finish``)."""

    job_id: int
    monitor: _Monitor
    attempt: int
    stored: list[JobArtifact]
    results: dict[str, Any]


def _publish(job: ComputeJob, ws: sandbox.Workspace, monitor: _Monitor, attempt: int) -> ComputeJob | _Stored:
    """Check what the runner released against what its algorithm releases (``outputs``) and store
    it; ``_finish`` publishes it. Anything else in the output folder is left there (and removed with
    the workspace). A run whose job was taken over meanwhile stores nothing more, removes what it
    stored and raises ``JobTakenOver``."""
    stored: list[JobArtifact] = []
    try:
        release = _release_of(job)
        checked = outputs.Checked()
        # Each file is stored from the handle it was checked through.
        with _output(ws, MANIFEST) as (manifest_fh, _size):
            manifest = outputs.manifest_check(manifest_fh, release, checked)
            for artifact in release.artifacts:
                _raise_if_lost(monitor)
                with _output(ws, artifact.name) as (fh, size):
                    outputs.artifact_check(artifact, fh, size, release, checked)
                    stored.append(_store(job, fh, artifact.name, artifact.kind, release.description(artifact)))
            _raise_if_lost(monitor)
            described = outputs.MANIFEST_ARTIFACT
            stored.append(_store(job, manifest_fh, MANIFEST, described.kind, described.description))
    except outputs.OutputRejected as exc:
        _delete_stored(stored)
        logger.error("job %s: the runner's outputs were refused: %s", job.pk, operator_text(exc))
        with transaction.atomic():
            return job_fail(_held(job.pk, monitor, attempt), "output_rejected")
    except OSError as exc:
        _delete_stored(stored)
        if not is_disk_full(exc):
            raise
        # The results storage is full: nothing reached the buyer, and room on our disk does not
        # depend on the data, so the job is refunded and its epsilon released.
        logger.error("job %s: the results storage is full: %s", job.pk, exc)
        with transaction.atomic():
            return job_fail(_held(job.pk, monitor, attempt), "disk_full")
    except BaseException:
        _delete_stored(stored)
        raise
    # The epsilon spent is the reservation, computed by the worker from the public parameters (the
    # order's), never the runner's claim: a manifest saying 0 is charged the reservation all the same.
    results = {"epsilon_spent": float(job.epsilon)} | {
        key: manifest.get(key)
        for key in (
            "epsilon_accounted",
            "delta",
            "accountant",
            "noise_multiplier",
            "sample_rate",
            "steps",
            "metrics",
            "curve",
            "epsilon_curve",
        )
    }
    return _Stored(job.pk, monitor, attempt, stored, results)


def _finish(run: _Stored) -> ComputeJob:
    """Finish the job with what its run stored, charging its budget: the reservation, whatever the
    runner's manifest says it spent."""
    stored = run.stored
    try:
        with transaction.atomic():
            job = _held(run.job_id, run.monitor, run.attempt)
            budget_services.budget_charge(job=job)
            job.result_hash = result_hash_of([(a.name, a.sha256) for a in stored])
            job = job_transition(
                job,
                ComputeJob.Status.FINISHED,
                results=run.results,
                progress={**job.progress, "phase": "finished", "percent": 100},
            )
            job_log(job, f"Published {len(stored)} artifacts; epsilon spent {job.epsilon_spent} of {job.epsilon}.")
            job_settle_later(job)
    except JobTakenOver:
        _delete_stored(stored)
        raise
    return job


def _raise_if_lost(monitor: _Monitor) -> None:
    """Between two artifacts: a takeover the heartbeat noticed stops the copying at once."""
    if monitor.lost.is_set():
        raise JobTakenOver(f"job {monitor.job_id} is no longer held by {monitor.worker}")


def _delete_stored(artifacts: list[JobArtifact]) -> None:
    for artifact in artifacts:
        try:
            results_storage().delete(artifact.storage_name)
        finally:
            artifact.delete()


# --- the reaper --------------------------------------------------------------------------------------


def _remove_workspace(path: str) -> None:
    """Remove a dead worker's job folder (its decrypted dataset), but only one inside
    COMPUTE_WORK_DIR, after killing whatever of its sandbox still runs there."""
    if not path:
        return
    base = Path(settings.COMPUTE_WORK_DIR).resolve()
    target = Path(path).resolve()
    if base not in target.parents:
        return
    _kill_workspace_processes(target)
    if target.exists():
        try:
            sandbox.rmtree_fixing_permissions(target)
        except OSError:
            # The decrypted dataset may still be on disk: an operator must remove it.
            logger.critical("could not remove the workspace %s of a dead worker", target, exc_info=True)


def _kill_workspace_processes(root: Path) -> int:
    """SIGKILL the process group of every process that names ``root`` on its command line (the
    sandbox's bwrap binds the workspace's folders) or works in it (unsandboxed runs). bwrap's
    --die-with-parent already ends a sandbox with its worker; this is for anything that outlived it."""
    killed = 0
    prefix = str(root)
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            inside = any(arg == prefix or arg.startswith(prefix + "/") for arg in cmdline)
            if not inside:
                cwd = process.cwd()
                inside = cwd == prefix or cwd.startswith(prefix + "/")
        except psutil.Error:
            continue
        if not inside or process.pid == os.getpid():
            continue
        logger.warning("killing process %s left running in workspace %s", process.pid, root)
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            process.kill()
        killed += 1
    return killed


def jobs_reap() -> dict[str, int]:
    """Jobs whose worker died: seen at once for a worker of this host whose process is gone (a
    worker runs this when it starts, and beat every 15 s), else after the heartbeat timeout. Each
    runs again from the start (up to ``COMPUTE_MAX_ATTEMPTS``, then it fails as ``worker_lost``),
    its leftover sandbox killed and its workspace removed. Queued jobs whose task was lost are
    enqueued again, and settlements that never went out are sent."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.COMPUTE_HEARTBEAT_TIMEOUT_SECONDS)
    counts = {"requeued": 0, "failed": 0, "reenqueued": 0}
    active = ComputeJob.objects.filter(status__in=ComputeJob.ACTIVE).only("pk", "worker", "heartbeat_at")
    for candidate in [job for job in active if _worker_gone(job, stale)]:
        with transaction.atomic():
            job = _locked(candidate.pk)
            if job.status not in ComputeJob.ACTIVE or not _worker_gone(job, stale):
                continue
            workspace = job.workspace
            counts[_job_restart(job, why="The worker running the job stopped", enqueue=True)] += 1
        _remove_workspace(workspace)
    lost = ComputeJob.objects.filter(
        status=ComputeJob.Status.QUEUED,
        queued_at__lt=now - timedelta(seconds=settings.COMPUTE_HEARTBEAT_TIMEOUT_SECONDS * 5),
    ).values_list("pk", flat=True)
    for job_id in lost:
        # A second delivery of a live task is a no-op (see _claim).
        enqueue_task("compute_to_data.tasks.job_run_task", job_id, on_commit=False)
        counts["reenqueued"] += 1
    # Settlements that never went out (the chain was down when the job ended and the task gave up).
    settling = ChainTransaction.objects.filter(
        purpose__in=[ChainTransaction.Purpose.RECEIPT, ChainTransaction.Purpose.REFUND],
        status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT],
        order_id__isnull=False,
    ).values("order_id")
    for job_id in (
        ComputeJob.objects.filter(
            status__in=ComputeJob.TERMINAL, order__status="confirmed", finished_at__lt=now - timedelta(minutes=2)
        )
        .exclude(order_id__in=settling)
        .values_list("pk", flat=True)
    ):
        job_settle_later(ComputeJob(pk=job_id))
    return counts
