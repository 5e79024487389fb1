"""A real Celery worker process runs a job from the ``compute`` queue. Killed mid-job, its job is
seen at once by the next worker to start and runs again from the start: it finishes, its budget is
charged once and its receipt recorded on chain, and the dead run's decrypted workspace is gone."""

from __future__ import annotations

import os
import signal
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from chain.models import ChainListing
from chain.units import epsilon_to_units
from chain.wrappers import Datatoken
from compute_to_data.models import ComputeJob, JobLogEntry, PrivacyBudget
from compute_to_data.services.execution import jobs_reap
from tests.compute_to_data.support import SLEEPER, listed_on_chain
from tests.worker_support import wait_for

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


def test_a_worker_killed_mid_job_runs_the_job_again_from_the_start_and_charges_once(
    api, people, on_chain, fake_runner, compute_settings, compute_worker
):
    start, eager_again, log = compute_worker
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)  # published in-process, before the worker takes over
    real_runner = compute_settings.COMPUTE_RUNNER_DIR
    worker = start(str(fake_runner("sleeper", source=SLEEPER)))  # this run never ends by itself
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
    first = ComputeJob.objects.get(pk=job_id)
    assert first.attempts == 1 and Path(first.workspace).exists()

    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, without warning
    worker.wait(timeout=10)
    wait_for(lambda: not _sandboxed_runners(), timeout=10)  # the sandbox died with its parent
    # Nothing waits for a heartbeat timeout (60 s): the next worker to start takes the job over.
    assert compute_settings.COMPUTE_HEARTBEAT_TIMEOUT_SECONDS >= 60
    start(str(real_runner))
    wait_for(lambda: ComputeJob.objects.get(pk=job_id).is_terminal, timeout=120, log=log)

    job = ComputeJob.objects.get(pk=job_id)
    assert (job.status, job.failure, job.reason) == ("finished", "", ""), log.read_text()[-3000:]
    assert job.attempts == 2
    assert job.budget_state == "charged" and job.epsilon_spent <= Decimal("0.6")
    budget = PrivacyBudget.objects.get(dataset=dataset)
    assert budget.epsilon_reserved == 0 and budget.epsilon_spent == job.epsilon_spent, "charged once"
    assert not Path(first.workspace).exists(), "the dead run's decrypted dataset is removed"
    assert JobLogEntry.objects.filter(job=job, message__contains="runs again from the start").count() == 1
    wait_for(lambda: ComputeJob.objects.get(pk=job_id).order.status == "receipted", timeout=60, log=log)
    listing = ChainListing.objects.get(dataset=dataset)
    assert Datatoken(on_chain.w3, listing.datatoken_address).epsilon_ordered() == epsilon_to_units(Decimal("0.6"))
    eager_again()
    assert jobs_reap() == {"requeued": 0, "failed": 0, "reenqueued": 0}  # nothing left to reap


def test_three_jobs_ordered_at_once_from_one_wallet_all_finish_on_the_worker(
    api, people, on_chain, compute_settings, compute_worker
):
    """Each order's buy+order carries a permit: signed back to back, their permit nonces must
    follow each other although none is mined yet."""
    start, eager_again, log = compute_worker
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
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
