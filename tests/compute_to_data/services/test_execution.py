"""A worker's death is seen at once on its host, and the job it ran runs again from the start
(budget still reserved, nothing charged, its workspace and leftover processes gone), up to
COMPUTE_MAX_ATTEMPTS; a database blip under a real worker does not lose a job or charge it twice.

A run whose job was given to another worker while it published (this worker looked dead, e.g. its
heartbeat stale through a long database outage) stores nothing, charges nothing and does not end the
job's new attempt: ``_publish`` checks that it still holds the job before each write and before the
final transition."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
from django.db import connection
from django.utils import timezone

from compute_to_data import sandbox, tasks
from compute_to_data.models import ComputeJob, JobArtifact, JobLogEntry, PrivacyBudget
from compute_to_data.services import execution
from marketplace.models import Dataset
from tests.compute_to_data.services.outputs_support import job_released
from tests.factories import make_dataset, make_reserved_job


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _running_job(
    dataset: Dataset,
    buyer,
    *,
    worker: str,
    attempts: int = 1,
    workspace: str = "",
    status: str = ComputeJob.Status.RUNNING,
    **fields,
):
    now = timezone.now()
    values = {
        "worker": worker,
        "attempts": attempts,
        "heartbeat_at": now,
        "data_touched_at": now,
        "queued_at": now - timedelta(seconds=5),
        "workspace": workspace,
        **fields,
    }
    return make_reserved_job(dataset, buyer, status=status, **values)


@pytest.fixture
def listed(provider, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    Dataset.objects.filter(pk=dataset.pk).update(epsilon_total=Decimal("3"), epsilon_per_job=Decimal("1"))
    dataset.refresh_from_db()
    return dataset


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(tasks.job_run_task, "delay", sent.append)
    return sent


@pytest.mark.django_db(transaction=True)
def test_the_job_of_a_dead_worker_on_this_host_runs_again_at_once_with_its_budget_still_reserved(
    listed, buyer, compute_settings, enqueued
):
    workspace = Path(compute_settings.COMPUTE_WORK_DIR) / "job-x-0123"
    (workspace / "input").mkdir(parents=True)
    (workspace / "input" / "dataset.csv").write_bytes(b"decrypted,rows\n")
    # What a sandbox that outlived its worker would be: a process working in the workspace.
    leftover = subprocess.Popen(["sleep", "300"], cwd=workspace / "input", start_new_session=True)
    job = _running_job(listed, buyer, worker=f"{socket.gethostname()}:{_dead_pid()}", workspace=str(workspace))
    assert job.heartbeat_at > timezone.now() - timedelta(seconds=5)  # no heartbeat timeout involved

    assert execution.jobs_reap() == {"requeued": 1, "failed": 0, "reenqueued": 0}
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 1 and job.worker == "" and job.workspace == ""
    assert job.budget_state == "reserved" and job.epsilon_spent is None
    budget = PrivacyBudget.objects.get(dataset=listed)
    assert budget.epsilon_reserved == Decimal("0.5") and budget.epsilon_spent == 0
    assert enqueued == [job.pk]
    assert not workspace.exists(), "the decrypted dataset is removed"
    assert leftover.wait(timeout=5) == -9, "the leftover process is killed"
    message = JobLogEntry.objects.filter(job=job).last().message
    assert message == "The worker running the job stopped; the job runs again from the start (attempt 2 of 3)."
    assert execution.jobs_reap() == {"requeued": 0, "failed": 0, "reenqueued": 0}


@pytest.mark.django_db(transaction=True)
def test_a_live_worker_keeps_its_job_and_a_silent_one_loses_it_after_the_timeout(
    listed, buyer, compute_settings, enqueued
):
    alive = _running_job(listed, buyer, worker=f"{socket.gethostname()}:{os.getpid()}")
    elsewhere = _running_job(listed, buyer, worker="another-host:1234")
    assert execution.jobs_reap()["requeued"] == 0
    stale = timezone.now() - timedelta(seconds=compute_settings.COMPUTE_HEARTBEAT_TIMEOUT_SECONDS + 5)
    ComputeJob.objects.filter(pk=elsewhere.pk).update(heartbeat_at=stale)
    assert execution.jobs_reap()["requeued"] == 1
    assert ComputeJob.objects.get(pk=elsewhere.pk).status == "queued"
    assert ComputeJob.objects.get(pk=alive.pk).status == "running"


def test_a_reused_pid_is_not_mistaken_for_the_worker():
    me = f"{socket.gethostname()}:{os.getpid()}"
    started = psutil.Process().create_time()
    assert execution.worker_is_dead(me, last_seen=timezone.now()) is False
    before_i_started = timezone.now() - timedelta(seconds=time.time() - started + 60)
    assert execution.worker_is_dead(me, last_seen=before_i_started) is True
    assert execution.worker_is_dead(f"{socket.gethostname()}:{_dead_pid()}", last_seen=None) is True
    assert execution.worker_is_dead("another-host:1", last_seen=None) is None
    assert execution.worker_is_dead("", last_seen=None) is None


@pytest.mark.django_db(transaction=True)
def test_after_the_last_attempt_the_job_fails_as_worker_lost_and_nothing_stays_reserved(
    listed, buyer, compute_settings, enqueued
):
    job = _running_job(
        listed, buyer, worker=f"{socket.gethostname()}:{_dead_pid()}", attempts=compute_settings.COMPUTE_MAX_ATTEMPTS
    )
    assert execution.jobs_reap() == {"requeued": 0, "failed": 1, "reenqueued": 0}
    job.refresh_from_db()
    assert (job.status, job.failure, job.limit_hit) == ("failed", "worker_lost", "worker_lost")
    assert job.budget_state in ("charged", "released")
    assert PrivacyBudget.objects.get(dataset=listed).epsilon_reserved == 0
    assert enqueued == []


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_task_takes_over_the_job_of_a_dead_worker(listed, buyer, compute_settings, enqueued):
    workspace = Path(compute_settings.COMPUTE_WORK_DIR) / "job-y-4567"
    workspace.mkdir(parents=True)
    job = _running_job(listed, buyer, worker=f"{socket.gethostname()}:{_dead_pid()}", workspace=str(workspace))
    claimed = execution._claim(job.pk)
    assert claimed is not None and claimed.status == "provisioning"
    assert claimed.attempts == 2 and claimed.worker == execution._worker_name()
    assert not workspace.exists()
    assert enqueued == [], "the redelivered task runs it itself"
    assert execution._claim(job.pk) is None, "a live worker's job is not taken over"
    shutil.rmtree(workspace, ignore_errors=True)


def test_a_dropped_connection_is_retried_on_a_fresh_one(monkeypatch):
    from django.db import OperationalError

    monkeypatch.setattr(execution, "DB_RETRY_DELAYS", (0.0, 0.0))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return "done"

    assert execution.db_retry(flaky, what="test") == "done" and len(calls) == 3
    calls.clear()

    def down():
        calls.append(1)
        raise OperationalError("the database system is shutting down")

    with pytest.raises(OperationalError):
        execution.db_retry(down, what="test")
    assert len(calls) == 3, "tried once and again after each delay, then the error"


def _slow_runner(compute_settings, seconds: float) -> Path:
    """The trusted runner, made to wait ``seconds`` before it starts (a long job, to interrupt)."""
    source = Path(compute_settings.COMPUTE_RUNNER_DIR)
    root = Path(compute_settings.COMPUTE_WORK_DIR).parent / f"slow-runner-{os.getpid()}-{time.monotonic_ns()}"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("__pycache__"))
    main = root / "__main__.py"
    main.write_text(f"import time\ntime.sleep({seconds})\n" + main.read_text())
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return root


def _terminate_other_connections() -> int:
    """pg_terminate_backend on every other connection to the test database: the worker's, all of them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _settlement_state(job_id: int) -> str:
    """Where the job's settlement stands, for a failure's output: the order, and each of its chain
    transactions (a missing receipt transaction, one still pending, or one mined but not applied
    to the order are three different faults)."""
    from chain.models import ChainTransaction

    job = ComputeJob.objects.select_related("order").get(pk=job_id)
    lines = [f"job {job.pk}: {job.status} attempts={job.attempts} budget={job.budget_state} ({job.settlement})"]
    if job.order is not None:
        lines.append(f"order {job.order.pk}: {job.order.status} error={job.order.error!r}")
        for tx in ChainTransaction.objects.filter(order=job.order).order_by("pk"):
            lines.append(f"  tx {tx.pk} {tx.purpose}: {tx.status} nonce={tx.nonce} attempts={tx.attempts} {tx.error!r}")
    return "\n".join(lines)


@pytest.mark.chain
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_killing_the_database_connections_of_a_running_job_loses_nothing_and_charges_once(
    api, people, on_chain, compute_settings, compute_worker
):
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    from chain.models import ChainListing
    from chain.units import epsilon_to_units
    from chain.wrappers import Datatoken
    from tests.compute_to_data.support import listed_on_chain
    from tests.worker_support import wait_for

    start, eager_again, log = compute_worker
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    runner = _slow_runner(compute_settings, 6)
    try:
        start(str(runner))
        api.force_authenticate(buyer)
        body = {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.5}}
        response = api.post("/api/v1/jobs/", body, format="json")
        assert response.status_code == 202, response.content
        job_id = response.json()["id"]
        wait_for(lambda: ComputeJob.objects.get(pk=job_id).status == "running", timeout=90, log=log)
        time.sleep(1.5)  # the monitor has written heartbeats on its connection by now
        assert _terminate_other_connections() >= 1
        time.sleep(2)
        assert _terminate_other_connections() >= 1  # and again, the reconnected ones
        wait_for(lambda: ComputeJob.objects.get(pk=job_id).is_terminal, timeout=120, log=log)
        job = ComputeJob.objects.get(pk=job_id)
        assert (job.status, job.failure) == ("finished", ""), log.read_text()[-3000:]
        assert job.budget_state == "charged"
        budget = PrivacyBudget.objects.get(dataset=dataset)
        assert budget.epsilon_reserved == 0 and budget.epsilon_spent == job.epsilon_spent == Decimal("0.5")
        wait_for(lambda: ComputeJob.objects.get(pk=job_id).order.status == "receipted", timeout=60, log=log)
        listing = ChainListing.objects.get(dataset=dataset)
        assert Datatoken(on_chain.w3, listing.datatoken_address).epsilon_ordered() == epsilon_to_units(Decimal("0.5"))
        assert "database connection dropped" in log.read_text(), "the blip did hit the worker"
    except BaseException:
        print(log.read_text())  # the whole worker log, shown with the failure
        print(_settlement_state(job_id) if "job_id" in locals() else "no job")
        raise
    finally:
        eager_again()
        shutil.rmtree(runner, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_job_was_taken_over_stops_and_writes_nothing(listed, buyer, compute_settings):
    """A worker that only looked dead (its heartbeat stale) keeps running until it notices: its
    sandbox is stopped by should_cancel, and its progress and logs never reach the new attempt."""
    job = _running_job(listed, buyer, worker="other-host:77", progress={"phase": "training", "percent": 40})
    monitor = execution._Monitor(job.pk, worker=f"{socket.gethostname()}:{os.getpid()}")
    monitor.on_event({"event": "log", "message": "epoch 1 of 3"})
    monitor.on_event({"event": "progress", "phase": "training", "step": 9, "steps": 10})
    with pytest.raises(execution.JobTakenOver):
        monitor.flush()
    with pytest.raises(execution.JobTakenOver):
        monitor.should_cancel()
    job.refresh_from_db()
    assert job.progress == {"phase": "training", "percent": 40}
    assert not JobLogEntry.objects.filter(job=job, source=JobLogEntry.Source.RUNNER).exists()


def test_a_settlement_hit_by_a_dropped_connection_is_retried(monkeypatch):
    """A settlement task whose connection the database dropped (OperationalError, then "connection
    already closed" on the same connection) is retried instead of failing: the receipt still goes out."""
    from celery.exceptions import Retry
    from django.db import InterfaceError, OperationalError

    from compute_to_data.services import jobs as job_services

    errors = [
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
    ]
    outcomes: list[str] = []

    def settle(*, job_id: int) -> str:
        if errors:
            outcomes.append(type(errors[0]).__name__)
            raise errors.pop(0)
        outcomes.append("receipt")
        return "receipt"

    monkeypatch.setattr(job_services, "job_settle", settle)
    # Each attempt as the worker runs it: the first two end in a retry (not a failure), the third settles.
    for _ in range(2):
        with pytest.raises(Retry):
            tasks.job_settle_task.apply(args=(7,))
    assert tasks.job_settle_task.apply(args=(7,)).get() == "receipt"
    assert outcomes == ["OperationalError", "InterfaceError", "receipt"]


ME = "this-host:101"


def _released(ws: sandbox.Workspace, job: ComputeJob) -> None:
    """What a runner that finished leaves in out/: the trusted runner's artifacts and manifest."""
    job_released(job, ws.output_dir)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("noticed", [True, False], ids=["heartbeat-noticed", "found-at-the-end"])
def test_a_run_taken_over_while_publishing_leaves_the_new_attempt_alone(listed, buyer, compute_settings, noticed):
    # The new attempt (another worker's, attempt 2) is running; this run still thinks it holds attempt 1.
    job = _running_job(listed, buyer, worker="other-host:77", attempts=2, status=ComputeJob.Status.PUBLISHING)
    monitor = execution._Monitor(job.pk, worker=ME)
    if noticed:
        monitor.lost.set()
    storage = execution.results_storage()
    with sandbox.workspace(Path(compute_settings.COMPUTE_WORK_DIR), "takeover", execution.sandbox_config()) as ws:
        _released(ws, job)
        with pytest.raises(execution.JobTakenOver):
            execution._finish(execution._publish(job, ws, monitor, attempt=1))
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.PUBLISHING and job.worker == "other-host:77" and job.attempts == 2
    assert job.budget_state == "reserved" and job.epsilon_spent in (None, Decimal("0")) and not job.result_hash
    assert not JobArtifact.objects.filter(job=job).exists()
    assert not storage.exists(f"job-{job.pk}") or storage.listdir(f"job-{job.pk}") == ([], [])
    assert not JobLogEntry.objects.filter(job=job, message__startswith="Published").exists()
    assert monitor.lost.is_set()


@pytest.mark.django_db(transaction=True)
def test_a_run_that_still_holds_its_job_publishes_it(listed, buyer, compute_settings):
    job = _running_job(listed, buyer, worker=ME, attempts=1, status=ComputeJob.Status.PUBLISHING)
    monitor = execution._Monitor(job.pk, worker=ME)
    with sandbox.workspace(Path(compute_settings.COMPUTE_WORK_DIR), "held", execution.sandbox_config()) as ws:
        _released(ws, job)
        job = execution._finish(execution._publish(job, ws, monitor, attempt=1))
    assert job.status == ComputeJob.Status.FINISHED and job.budget_state == "charged"
    assert sorted(JobArtifact.objects.filter(job=job).values_list("name", flat=True)) == [
        "manifest.json",
        "statistics.json",
        "statistics.md",
    ]
