"""Hostile code in place of the trusted runner, through the whole job pipeline: every escape
attempt is contained, the job ends ``failed`` with a reason, its workspace is gone, and the budget
it held is charged (the code had the data) and settled on chain, never left reserved.

The ``lie_*`` programs run the trusted runner and then lie about what it did (the worker must not
believe them): a manifest claiming no epsilon spent, the raw dataset shipped as the weights, an
undeclared artifact, progress that is not the runner's, an error in the program's own words."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from compute_to_data import sandbox, tasks
from compute_to_data.failures import FAILURES, failure_text
from compute_to_data.models import ComputeJob, JobArtifact, PrivacyBudget
from compute_to_data.services import execution
from tests.compute_to_data.support import CANARY, HOSTILE, LOGISTIC, SLEEPER, job_submit, listed_on_chain

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The lie_* programs finish like the trusted runner (they wrap it): their own tests below.
ATTACKS = sorted(p.stem for p in HOSTILE.glob("*.py") if not p.stem.startswith(("_", "lie_")))
TRUSTED_RUNNER = Path(execution.__file__).resolve().parents[1] / "runner"
# The limit each attack runs into, where one applies (others end with the runner's exit status).
EXPECTED_LIMIT = {
    "fork_bomb": "processes",
    "memory_bomb": "memory",
    "fill_disk": "disk",
    "sleep_forever": "wall_clock",
    "outlive_timeout": "wall_clock",
}


def _contained_settings(settings) -> None:
    settings.COMPUTE_WALL_SECONDS = 6
    settings.COMPUTE_CPU_SECONDS = 20
    settings.COMPUTE_MEMORY_MB = 768
    settings.COMPUTE_DISK_MB = 32
    settings.COMPUTE_FILE_SIZE_MB = 16
    settings.COMPUTE_PROCESSES = 32


@pytest.mark.parametrize("attack", ATTACKS)
def test_escape_attempt_is_contained_and_the_job_fails_with_a_reason(
    attack, api, people, on_chain, fake_runner, compute_settings
):
    _contained_settings(compute_settings)
    fake_runner(attack)
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    assert job["status"] == "failed", job
    assert job["reason"], "a failed job says why"
    # ... in a sentence of our fixed list, never the program's own words.
    assert job["reason"] in {failure_text(code) for code in FAILURES}, job["reason"]
    assert job["failure"] in FAILURES
    if attack in EXPECTED_LIMIT:
        assert job["limit_hit"] == EXPECTED_LIMIT[attack], job["reason"]
        assert job["failure_caused_by"] == "limit"
    logs = " ".join(e["message"] for e in api.get(f"/api/v1/jobs/{job['id']}/logs/").json())
    assert "ESCAPED" not in logs
    row = ComputeJob.objects.get(pk=job["id"])
    assert row.workspace and not Path(row.workspace).exists(), "the decrypted dataset's folder is removed"
    # The code had the data: the epsilon is charged, and the receipt (of a failure) is on chain.
    assert job["budget_state"] == "charged" and Decimal(job["epsilon_spent"]) == Decimal("0.3")
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == 0
    assert job["order_status"] == "receipted"
    assert api.get(f"/api/v1/jobs/{job['id']}/receipt/").json()["verified"] is True


def test_buyer_cancels_a_running_job_and_the_sandbox_stops_within_seconds(
    api, people, on_chain, fake_runner, compute_settings, monkeypatch
):
    compute_settings.COMPUTE_WALL_SECONDS = 60
    fake_runner("sleeper", source=SLEEPER)
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    runs: list[threading.Thread] = []

    def run_in_background(job_id: int) -> None:
        thread = threading.Thread(target=execution.job_run, args=(job_id,))
        runs.append(thread)
        thread.start()

    monkeypatch.setattr(tasks.job_run_task, "delay", run_in_background)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.4})
    deadline = time.monotonic() + 30
    while ComputeJob.objects.get(pk=job["id"]).status != "running":
        assert time.monotonic() < deadline, "the job never started running"
        time.sleep(0.1)
    cancelled_at = time.monotonic()
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel/").json()["cancelling"] is True
    runs[0].join(timeout=20)
    assert not runs[0].is_alive()
    assert time.monotonic() - cancelled_at < 5
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["status"] == "cancelled" and job["limit_hit"] == "cancelled"
    # The runner had read the data: the reservation is charged, and the receipt pays for the compute.
    assert job["budget_state"] == "charged" and Decimal(job["epsilon_spent"]) == Decimal("0.4")
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == 0
    assert job["order_status"] == "receipted"


# --- runners that lie about what they did --------------------------------------------------------


@pytest.fixture
def lying_runner(compute_settings):
    """``lying_runner("lie_epsilon_zero")``: a copy of the trusted runner whose ``__main__`` is that
    program (it calls the real runner, then lies)."""
    made: list[Path] = []

    def install(name: str) -> Path:
        root = Path(compute_settings.COMPUTE_WORK_DIR).parent / f"runner-{uuid.uuid4().hex}"
        shutil.copytree(TRUSTED_RUNNER, root, ignore=shutil.ignore_patterns("__pycache__"))
        (root / "__main__.py").write_text((HOSTILE / f"{name}.py").read_text())
        for folder, _dirs, files in os.walk(root):
            os.chmod(folder, 0o755)  # noqa: S103 (the sandbox uid reads the runner)
            for file in files:
                os.chmod(Path(folder) / file, 0o644)
        compute_settings.COMPUTE_RUNNER_DIR = str(root)
        made.append(root)
        return root

    yield install
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


def _logs(api, job: dict) -> str:
    return " ".join(e["message"] for e in api.get(f"/api/v1/jobs/{job['id']}/logs/").json())


def _refused_and_charged(api, job: dict, dataset) -> None:
    """Nothing published, and a reason from the fixed table. The reservation is charged: code that
    is not ours read the rows before it chose what to write, so a free refusal would release a bit
    about the data per job."""
    assert job["status"] == "failed" and job["failure"] == "output_rejected", job
    assert job["reason"] == failure_text("output_rejected")
    assert not JobArtifact.objects.filter(job_id=job["id"]).exists()
    assert api.get(f"/api/v1/jobs/{job['id']}/result/").status_code in (404, 409)
    assert job["budget_state"] == "charged" and Decimal(job["epsilon_spent"]) == Decimal(job["epsilon"])
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == 0
    assert job["order_status"] == "receipted"
    assert CANARY not in _logs(api, job)
    row = ComputeJob.objects.get(pk=job["id"])
    assert row.workspace and not Path(row.workspace).exists()


@pytest.mark.hostile
def test_a_manifest_claiming_no_epsilon_is_charged_the_reservation(api, people, on_chain, lying_runner):
    lying_runner("lie_epsilon_zero")
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    assert job["status"] == "finished", job
    assert job["budget_state"] == "charged" and Decimal(job["epsilon_spent"]) == Decimal("0.3")
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_spent == Decimal("0.3")
    assert ComputeJob.objects.get(pk=job["id"]).results["epsilon_spent"] == 0.3
    assert job["order_status"] == "receipted"
    assert api.get(f"/api/v1/jobs/{job['id']}/receipt/").json()["verified"] is True


@pytest.mark.hostile
def test_the_raw_dataset_shipped_as_the_weights_is_refused_and_nothing_published(api, people, on_chain, lying_runner):
    lying_runner("lie_raw_dataset")
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    job = job_submit(api, buyer, dataset, "dp-logistic-regression", {**LOGISTIC, "epsilon": 0.5})
    _refused_and_charged(api, job, dataset)


@pytest.mark.hostile
def test_an_undeclared_artifact_is_refused_and_nothing_published(api, people, on_chain, lying_runner):
    lying_runner("lie_extra_artifact")
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    _refused_and_charged(api, job, dataset)


@pytest.mark.hostile
def test_progress_the_runner_never_sends_is_dropped_and_the_heartbeat_goes_on(
    api, people, on_chain, lying_runner, compute_settings, monkeypatch
):
    compute_settings.COMPUTE_HEARTBEAT_SECONDS = 0.5
    compute_settings.COMPUTE_HEARTBEAT_TIMEOUT_SECONDS = 2
    lying_runner("lie_progress")
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    runs: list[threading.Thread] = []

    def run_in_background(job_id: int) -> None:
        thread = threading.Thread(target=execution.job_run, args=(job_id,))
        runs.append(thread)
        thread.start()

    monkeypatch.setattr(tasks.job_run_task, "delay", run_in_background)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    seen: list[dict] = []
    reaped = {"requeued": 0, "failed": 0}
    deadline = time.monotonic() + 60
    while runs[0].is_alive():
        assert time.monotonic() < deadline, "the job never ended"
        row = ComputeJob.objects.get(pk=job["id"])
        if row.status == "running":
            seen.append(row.progress)
            # The silence in the program outlasts the heartbeat timeout: only a live heartbeat keeps
            # the reaper off the job.
            counts = execution.jobs_reap()
            reaped = {key: reaped[key] + counts[key] for key in reaped}
        time.sleep(0.5)
    runs[0].join()
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["status"] == "finished" and job["attempts"] == 1, job
    assert reaped == {"requeued": 0, "failed": 0}
    assert seen, "the test saw the job running"
    for progress in seen:
        assert progress.get("phase") != "finished" and progress.get("percent", 0) < 100
        assert progress.get("epsilon", 0) <= 0.3
    assert job["progress"]["phase"] == "finished" and job["budget_state"] == "charged"
    assert "\x00" not in _logs(api, job)


@pytest.mark.hostile
def test_a_runner_error_in_its_own_words_reaches_the_buyer_as_a_fixed_sentence(api, people, on_chain, fake_runner):
    fake_runner("lie_error_text")
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    assert job["status"] == "failed" and job["failure"] == "runner_error", job
    assert job["reason"] == failure_text("runner_error")
    logs = _logs(api, job)
    assert "evil.example" not in logs and "\x1b" not in logs and "wallet seed" not in logs


@pytest.mark.hostile
def test_a_workspace_that_cannot_be_removed_fails_the_job_unpublished_and_refunded(
    api, people, on_chain, compute_settings, monkeypatch
):
    """The trusted runner finished, but its workspace (the decrypted dataset) could not be removed:
    the job is not reported as finished, nothing is published, and the buyer is not charged for the
    platform's failure."""
    real_workspace = sandbox.workspace

    @contextlib.contextmanager
    def unremovable(*args, **kwargs):
        with real_workspace(*args, **kwargs) as ws:
            yield ws
        raise sandbox.CleanupFailed(f"the workspace {ws.root} could not be removed: test")

    monkeypatch.setattr(sandbox, "workspace", unremovable)
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.3})
    assert job["status"] == "failed" and job["failure"] == "cleanup_failed", job
    assert job["reason"] == failure_text("cleanup_failed") and job["failure_caused_by"] == "platform"
    assert not JobArtifact.objects.filter(job_id=job["id"]).exists()
    assert job["budget_state"] == "released" and Decimal(job["epsilon_spent"]) == 0
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == 0
    assert job["order_status"] == "refunded"
