"""Cancelling: the buyer confirms on the page; before the runner read any data they get everything
back, after that nothing is released, so the epsilon is released and the payment goes to the
provider for the compute. A moderator cancels any buyer's job with a reason: always refunded and
released, logged, and the reason shown (escaped) to the buyer."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.test import Client

from chain.models import ChainListing, ChainTransaction, Wallet
from chain.wrappers import Datatoken, MockStablecoin
from common.errors import InvalidInput, PermissionDenied
from compute_to_data import tasks
from compute_to_data.models import ComputeJob, JobLogEntry, PrivacyBudget
from compute_to_data.services import execution
from compute_to_data.services import jobs as job_services
from tests.compute_to_data.support import SLEEPER, job_submit, listed_on_chain
from tests.factories import UserFactory, make_dataset, make_reserved_job
from tests.worker_support import wait_for

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _balance(on_chain, dataset, user) -> int:
    listing = ChainListing.objects.get(dataset=dataset)
    wallet = Wallet.objects.get(user=user, kind=Wallet.Kind.MANAGED)
    return MockStablecoin(on_chain.w3, listing.payment_token).balance_of(wallet.address)


def _epsilon_ordered(on_chain, dataset) -> int:
    listing = ChainListing.objects.get(dataset=dataset)
    return Datatoken(on_chain.w3, listing.datatoken_address).epsilon_ordered()


def _page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _text(response) -> str:
    import re

    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()


def test_cancelling_a_running_job_on_a_real_worker_charges_the_reservation_and_pays_the_compute(
    api, people, on_chain, fake_runner, compute_settings, compute_worker
):
    start, eager_again, log = compute_worker
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    start(str(fake_runner("sleeper", source=SLEEPER)))
    before = _balance(on_chain, dataset, buyer)
    api.force_authenticate(buyer)
    body = {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.6}}
    response = api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    wait_for(lambda: ComputeJob.objects.get(pk=job_id).status == "running", timeout=90, log=log)

    # The page asks first: a plain GET shows what happens, and changes nothing.
    page = _page_client(buyer).get(f"/jobs/{job_id}/cancel/")
    assert page.status_code == 200
    text = _text(page)
    assert "Cancel job" in text and "nothing is released to you" in text and "not refunded" in text
    assert "is charged to the dataset's privacy budget" in text
    assert ComputeJob.objects.get(pk=job_id).cancel_requested_at is None

    # The staff's cancel endpoint is not the buyer's.
    api.force_authenticate(staff)
    assert api.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 403
    api.force_authenticate(buyer)
    assert api.post(f"/api/v1/jobs/{job_id}/cancel/").json()["cancelling"] is True
    wait_for(lambda: ComputeJob.objects.get(pk=job_id).is_terminal, timeout=30, log=log)
    wait_for(lambda: ComputeJob.objects.get(pk=job_id).settlement == "receipt", timeout=60, log=log)
    job = api.get(f"/api/v1/jobs/{job_id}/").json()
    assert job["status"] == "cancelled" and job["failure"] == "cancelled_running", job
    assert job["reason"] == "Cancelled by the buyer while running."
    # The runner had read the data: the whole reservation is charged, in the marketplace's books and on
    # chain (contracts v2: a receipt charges exactly it; cancelling mid-run gets no epsilon back).
    assert job["budget_state"] == "charged" and Decimal(job["epsilon_spent"]) == Decimal("0.6")
    budget = PrivacyBudget.objects.get(dataset=dataset)
    assert budget.epsilon_reserved == 0 and budget.epsilon_spent == Decimal("0.6")
    assert _epsilon_ordered(on_chain, dataset) == 600_000
    # The compute ran at the buyer's request: the receipt pays the provider.
    order = ComputeJob.objects.get(pk=job_id).order
    assert order.status == "receipted" and order.epsilon_spent == Decimal("0.6")
    assert _balance(on_chain, dataset, buyer) < before
    assert api.get(f"/api/v1/jobs/{job_id}/receipt/").json()["verified"] is True
    eager_again()


def test_the_buyer_confirms_before_a_queued_job_is_cancelled_and_gets_everything_back(
    api, people, on_chain, compute_settings, monkeypatch
):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)  # no worker takes it
    before = _balance(on_chain, dataset, buyer)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.5})
    assert job["status"] == "queued" and _balance(on_chain, dataset, buyer) < before
    client = _page_client(buyer)
    detail = client.get(f"/jobs/{job['id']}/").content.decode()
    assert f'href="/jobs/{job["id"]}/cancel/"' in detail  # a link to the question, not a form that acts
    question = _text(client.get(f"/jobs/{job['id']}/cancel/"))
    assert "you get everything back" in question and "refunded" in question
    # A POST without the confirmation only asks again.
    assert "Yes, cancel the job" in _text(client.post(f"/jobs/{job['id']}/cancel/"))
    assert ComputeJob.objects.get(pk=job["id"]).status == "queued"
    # Someone else's job cannot be cancelled from the page, nor asked about.
    refused = _text(_page_client(provider).post(f"/jobs/{job['id']}/cancel/", {"confirm": "yes"}, follow=True))
    assert "Only the buyer can cancel this job." in refused
    done = client.post(f"/jobs/{job['id']}/cancel/", {"confirm": "yes"}, follow=True)
    assert "Job cancelled before it started" in _text(done)
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["status"] == "cancelled" and job["budget_state"] == "released"
    assert job["order_status"] == "refunded" and _balance(on_chain, dataset, buyer) == before
    assert _epsilon_ordered(on_chain, dataset) == 0


def test_a_moderator_cancels_a_running_job_with_a_reason_and_the_buyer_is_refunded(
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
    before = _balance(on_chain, dataset, buyer)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.4})
    deadline = time.monotonic() + 30
    while ComputeJob.objects.get(pk=job["id"]).status != "running":
        assert time.monotonic() < deadline, "the job never started running"
        time.sleep(0.1)
    url = f"/api/v1/jobs/{job['id']}/moderator-cancel/"

    # Only staff, and only with a reason.
    api.force_authenticate(buyer)
    assert api.post(url, {"reason": "mine"}, format="json").status_code == 404
    api.force_authenticate(staff)
    blank = api.post(url, {"reason": "   "}, format="json")
    assert blank.status_code == 400 and "reason" in blank.json()["detail"].lower()
    page = _page_client(staff).post(f"/jobs/{job['id']}/moderator-cancel/", {"reason": ""})
    assert page.status_code == 200 and "the buyer reads it" in _text(page)  # a form error on the job page
    assert ComputeJob.objects.get(pk=job["id"]).cancel_requested_at is None

    reason = "Licence under review <script>alert(1)</script>"
    response = api.post(url, {"reason": reason}, format="json")
    assert response.status_code == 202 and response.json()["cancelling"] is True
    runs[0].join(timeout=20)
    assert not runs[0].is_alive()
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["status"] == "cancelled" and job["failure"] == "cancelled_by_moderator", job
    assert job["reason"] == f"Cancelled by a moderator: {reason}"
    assert job["failure_caused_by"] == "moderator"
    # The runner had the data, yet the buyer pays nothing for a moderator's decision.
    assert job["budget_state"] == "released" and Decimal(job["epsilon_spent"]) == 0
    assert job["order_status"] == "refunded" and _balance(on_chain, dataset, buyer) == before
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_spent == 0
    assert _epsilon_ordered(on_chain, dataset) == 0
    row = ComputeJob.objects.get(pk=job["id"])
    assert row.cancelled_by == staff and row.moderator_reason == reason
    assert JobLogEntry.objects.filter(job=row, message__contains="Cancellation by a moderator (moderator)").exists()
    # The buyer reads the reason, escaped.
    body = _page_client(buyer).get(f"/jobs/{job['id']}/").content.decode()
    assert "Cancelled by a moderator: Licence under review &lt;script&gt;" in body and "<script>alert" not in body
    assert ChainTransaction.objects.filter(purpose="refund", status="mined").count() == 1
    # A finished cancellation cannot be cancelled again.
    assert api.post(url, {"reason": "again"}, format="json").status_code == 409


@pytest.mark.django_db
def test_a_moderator_cannot_cancel_their_own_job_for_free(provider, staff):
    dataset = make_dataset(owner=provider)
    job = make_reserved_job(dataset, staff, status=ComputeJob.Status.QUEUED, reserve=False)
    with pytest.raises(PermissionDenied):
        job_services.job_cancel_by_moderator(job=job, moderator=staff, reason="mine")
    with pytest.raises(InvalidInput):
        job_services.job_cancel_by_moderator(job=job, moderator=UserFactory(is_staff=True), reason=" \n ")
    assert ComputeJob.objects.get(pk=job.pk).status == ComputeJob.Status.QUEUED
