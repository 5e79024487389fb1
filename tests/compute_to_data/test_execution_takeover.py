"""A run whose job was given to another worker while it published (this worker looked dead, e.g. its
heartbeat stale through a long database outage) stores nothing, charges nothing and does not end the
job's new attempt: ``_publish`` checks that it still holds the job before each write and before the
final transition."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from compute_to_data import sandbox
from compute_to_data.models import ComputeJob, JobArtifact, JobLogEntry
from compute_to_data.services import execution
from tests.compute_to_data.test_worker_death import _running_job, listed  # noqa: F401  (a fixture)

ME = "this-host:101"


def _released(ws: sandbox.Workspace) -> None:
    """What a runner that finished leaves in out/: one artifact and its manifest."""
    (ws.output_dir / "statistics.json").write_text('{"mean": 1.5}')
    manifest = {"artifacts": [{"name": "statistics.json", "kind": "statistics"}], "epsilon_spent": 0.5}
    (ws.output_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("noticed", [True, False], ids=["heartbeat-noticed", "found-at-the-end"])
def test_a_run_taken_over_while_publishing_leaves_the_new_attempt_alone(listed, buyer, compute_settings, noticed):  # noqa: F811
    # The new attempt (another worker's, attempt 2) is running; this run still thinks it holds attempt 1.
    job = _running_job(listed, buyer, worker="other-host:77", attempts=2, status=ComputeJob.Status.PUBLISHING)
    monitor = execution._Monitor(job.pk, worker=ME)
    if noticed:
        monitor.lost.set()
    storage = execution.results_storage()
    with sandbox.workspace(Path(compute_settings.COMPUTE_WORK_DIR), "takeover", execution.sandbox_config()) as ws:
        _released(ws)
        with pytest.raises(execution.JobTakenOver):
            execution._publish(job, ws, monitor, attempt=1)
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.PUBLISHING and job.worker == "other-host:77" and job.attempts == 2
    assert job.budget_state == "reserved" and job.epsilon_spent in (None, Decimal("0")) and not job.result_hash
    assert not JobArtifact.objects.filter(job=job).exists()
    assert not storage.exists(f"job-{job.pk}") or storage.listdir(f"job-{job.pk}") == ([], [])
    assert not JobLogEntry.objects.filter(job=job, message__startswith="Published").exists()
    assert monitor.lost.is_set()


@pytest.mark.django_db(transaction=True)
def test_a_run_that_still_holds_its_job_publishes_it(listed, buyer, compute_settings):  # noqa: F811
    job = _running_job(listed, buyer, worker=ME, attempts=1, status=ComputeJob.Status.PUBLISHING)
    monitor = execution._Monitor(job.pk, worker=ME)
    with sandbox.workspace(Path(compute_settings.COMPUTE_WORK_DIR), "held", execution.sandbox_config()) as ws:
        _released(ws)
        job = execution._publish(job, ws, monitor, attempt=1)
    assert job.status == ComputeJob.Status.FINISHED and job.budget_state == "charged"
    assert sorted(JobArtifact.objects.filter(job=job).values_list("name", flat=True)) == [
        "manifest.json",
        "statistics.json",
    ]
