"""A real Celery worker process runs a job from the ``compute`` queue; killed mid-job, the job is
reaped and its budget is charged and settled on chain, never left reserved."""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from chain.models import ChainListing
from chain.units import epsilon_to_units
from chain.wrappers import Datatoken
from compute_to_data.models import ComputeJob, PrivacyBudget
from compute_to_data.services.execution import jobs_reap
from tests.compute_to_data.test_job_sandbox import SLEEPER
from tests.compute_to_data.test_jobs import _listed
from tests.marketplace.test_tasks_integration import wait_for

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _sandboxed_runners() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "dp_runner" in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_a_worker_killed_mid_job_is_reaped_and_leaks_no_budget(
    api, people, on_chain, fake_runner, compute_settings, compute_worker
):
    start, eager_again, log = compute_worker
    provider, buyer, staff = people
    dataset = _listed(api, provider, staff)  # published in-process, before the worker takes over
    runner_dir = fake_runner("sleeper", source=SLEEPER)
    worker = start(str(runner_dir))
    api.force_authenticate(buyer)
    response = api.post(
        "/api/v1/jobs/",
        {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.6}},
        format="json",
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    # The worker sends and verifies the payment, reserves the budget and starts the sandbox.
    wait_for(lambda: ComputeJob.objects.get(pk=job_id).status == "running", timeout=90, log=log)
    wait_for(lambda: bool(_sandboxed_runners()), timeout=20, log=log)
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == Decimal("0.6")
    workspace = ComputeJob.objects.get(pk=job_id).workspace
    assert Path(workspace).exists()

    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, without warning
    worker.wait(timeout=10)
    wait_for(lambda: not _sandboxed_runners(), timeout=10)  # the sandbox died with its parent

    eager_again()  # settlement now runs in this process
    compute_settings.COMPUTE_HEARTBEAT_TIMEOUT_SECONDS = 1.0
    time.sleep(1.5)
    assert jobs_reap()["failed"] == 1
    job = ComputeJob.objects.get(pk=job_id)
    assert job.status == "failed" and job.limit_hit == "worker_lost"
    assert job.failure == "worker_lost" and job.reason == "The worker running the job stopped (platform error)."
    assert job.budget_state == "charged" and job.epsilon_spent == Decimal("0.6")
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == 0
    assert not Path(workspace).exists(), "the dead worker's decrypted dataset is removed"
    job.order.refresh_from_db()
    assert job.order.status == "receipted"
    listing = ChainListing.objects.get(dataset=dataset)
    assert Datatoken(on_chain.w3, listing.datatoken_address).epsilon_ordered() == epsilon_to_units(Decimal("0.6"))
    assert jobs_reap()["failed"] == 0  # reaping is idempotent


def test_three_jobs_ordered_at_once_from_one_wallet_all_finish_on_the_worker(
    api, people, on_chain, compute_settings, compute_worker
):
    """Each order's buy+order carries a permit: signed back to back, their permit nonces must
    follow each other although none is mined yet."""
    start, eager_again, log = compute_worker
    provider, buyer, staff = people
    dataset = _listed(api, provider, staff)
    start(str(compute_settings.COMPUTE_RUNNER_DIR))
    api.force_authenticate(buyer)
    ids = []
    for epsilon in (0.3, 0.4, 0.5):
        body = {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": epsilon}}
        response = api.post("/api/v1/jobs/", body, format="json")
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    wait_for(lambda: all(ComputeJob.objects.get(pk=i).is_terminal for i in ids), timeout=150, log=log)
    jobs = ComputeJob.objects.filter(pk__in=ids).select_related("order")
    assert [(j.status, j.reason) for j in jobs] == [("finished", "")] * 3
    wait_for(
        lambda: all(j.order.status == "receipted" for j in ComputeJob.objects.filter(pk__in=ids)), timeout=60, log=log
    )
