"""Hostile code in place of the trusted runner, through the whole job pipeline: every escape
attempt is contained, the job ends ``failed`` with a reason, its workspace is gone, and the budget
it held is charged (the code had the data) and settled on chain, never left reserved."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from compute_to_data import tasks
from compute_to_data.failures import FAILURES, failure_text
from compute_to_data.models import ComputeJob, PrivacyBudget
from compute_to_data.services import execution
from tests.compute_to_data.support import HOSTILE, SLEEPER, job_submit, listed_on_chain

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ATTACKS = sorted(p.stem for p in HOSTILE.glob("*.py") if not p.stem.startswith("_"))
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
