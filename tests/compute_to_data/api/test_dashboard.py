"""The provider's dashboard (page and ``GET /api/v1/me/dashboard/``): earnings from the orders
settled on a real anvil (a receipt, an order still in escrow, a refund), the budget left per
dataset, jobs per day, and nothing of another provider's data."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from chain.faucet import fund_address
from chain.services.wallets import wallet_managed_get_or_create
from compute_to_data import tasks
from compute_to_data.models import ComputeJob
from tests.compute_to_data.support import job_submit, listed_on_chain
from tests.factories import UserFactory


@pytest.mark.chain
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_dashboard_counts_a_receipt_an_escrowed_order_and_a_refund_of_my_data_only(
    api, people, on_chain, deployment, compute_settings, monkeypatch
):
    provider, buyer, staff = people
    other = UserFactory(username="other-provider")
    fund_address(on_chain.w3, deployment, wallet_managed_get_or_create(user=other).address)  # gas to publish
    mine = listed_on_chain(api, provider, staff)  # price 3 USDC, epsilon 10 in all, 1 per job
    theirs = listed_on_chain(api, other, staff)

    finished = job_submit(api, buyer, mine, "dp-statistics", {"epsilon": 0.5})
    assert finished["status"] == "finished" and finished["order_status"] == "receipted"
    spent = Decimal(finished["epsilon_spent"])

    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)  # no worker: jobs stay queued
    waiting = job_submit(api, buyer, mine, "dp-statistics", {"epsilon": 0.4})
    assert waiting["status"] == "queued" and waiting["order_status"] == "confirmed"
    cancelled = job_submit(api, buyer, mine, "dp-statistics", {"epsilon": 0.3})
    assert api.post(f"/api/v1/jobs/{cancelled['id']}/cancel/").status_code == 202
    elsewhere = job_submit(api, buyer, theirs, "dp-statistics", {"epsilon": 0.3})
    assert api.post(f"/api/v1/jobs/{elsewhere['id']}/cancel/").status_code == 202
    assert api.get(f"/api/v1/jobs/{cancelled['id']}/").json()["order_status"] == "refunded"

    api.force_authenticate(provider)
    response = api.get("/api/v1/me/dashboard/")
    assert response.status_code == 200, response.content
    body = response.json()
    # 3 USDC a job, 2.5 % fee: the receipt paid the provider 2.925 and the marketplace 0.075.
    assert body["totals"] == [
        {
            "token": "USDC",
            "paid": "2.925000",
            "fees": "0.075000",
            "in_escrow": "3.000000",
            "refunded": "3.000000",
            "orders_receipted": 1,
            "orders_in_escrow": 1,
            "orders_refunded": 1,
        }
    ]
    assert [d["id"] for d in body["datasets"]] == [mine.pk]
    (figures,) = body["datasets"]
    assert figures["on_chain"] is True and figures["earnings"] == body["totals"][0]
    budget = figures["budget"]
    left = Decimal("10") - spent - Decimal("0.4")
    assert Decimal(budget["epsilon_spent"]) == spent
    assert Decimal(budget["epsilon_reserved"]) == Decimal("0.4")
    assert Decimal(budget["epsilon_left"]) == left
    assert Decimal(budget["epsilon_left_on_chain"]) == left  # the receipt gave back what the job did not spend
    assert figures["jobs"] == {"total": 3, "by_status": {"finished": 1, "active": 1, "cancelled": 1}}
    assert body["jobs"] == figures["jobs"]
    today = body["jobs_per_day"][-1]
    assert today["date"] == timezone.localdate().isoformat() and today["total"] == 3
    assert len(body["jobs_per_day"]) == body["days"] == 30
    recent = {j["id"]: j for j in body["recent_jobs"]}
    assert set(recent) == {finished["id"], waiting["id"], cancelled["id"]}
    assert recent[finished["id"]]["buyer"] == "buyer"
    assert recent[finished["id"]]["receipt_url"] == f"/api/v1/jobs/{finished['id']}/receipt/"
    assert recent[finished["id"]]["receipt_tx_hash"].startswith("0x")
    assert recent[cancelled["id"]]["settlement"] == "refund" and recent[cancelled["id"]]["receipt_url"] is None

    # The page shows the same figures, with a chart and a table for each.
    client = Client()
    client.force_login(provider)
    page = client.get("/me/dashboard/")
    assert page.status_code == 200
    html = page.content.decode()
    for text in ("2.925 USDC", "Verify receipt", 'id="earnings-chart"', 'id="budget-chart"', 'id="jobs-chart"'):
        assert text in html, text
    assert page.context["dash"].totals[0].refunded == Decimal("3")

    # The other provider sees only their own refund; the buyer, who provides nothing, sees nothing.
    api.force_authenticate(other)
    theirs_body = api.get("/api/v1/me/dashboard/").json()
    assert [d["id"] for d in theirs_body["datasets"]] == [theirs.pk]
    assert theirs_body["totals"][0]["refunded"] == "3.000000" and theirs_body["totals"][0]["paid"] == "0.000000"
    api.force_authenticate(buyer)
    empty = api.get("/api/v1/me/dashboard/").json()
    assert empty["datasets"] == [] and empty["totals"] == [] and empty["recent_jobs"] == []
    assert ComputeJob.objects.filter(dataset__owner=provider).count() == 3


@pytest.mark.django_db
def test_dashboard_needs_a_signed_in_user_and_a_sensible_period(api, provider):
    response = api.get("/api/v1/me/dashboard/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    api.force_authenticate(provider)
    refused = api.get("/api/v1/me/dashboard/?days=0")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    assert api.get("/api/v1/me/dashboard/?days=abc").status_code == 400
    week = api.get("/api/v1/me/dashboard/?days=7").json()
    assert week["days"] == 7 and len(week["jobs_per_day"]) == 7
    assert all(day["total"] == 0 for day in week["jobs_per_day"])

    page = Client().get("/me/dashboard/")
    assert page.status_code == 302 and "/login/" in page["Location"]


@pytest.mark.django_db
def test_dashboard_page_says_what_to_do_when_there_is_nothing_yet(provider):
    from tests.factories import make_dataset

    client = Client()
    client.force_login(provider)
    html = client.get("/me/dashboard/").content.decode()
    assert "You have not published any data yet" in html and "Upload your first dataset" in html
    assert "<canvas" not in html

    make_dataset(owner=provider, title="Quiet data")
    html = client.get("/me/dashboard/?days=90").content.decode()
    assert "Quiet data" in html
    assert "No jobs have run on your data yet" in html
    assert "No orders on your datasets yet" in html
    assert 'id="budget-chart"' in html and 'id="earnings-chart"' not in html
    assert 'href="?days=90" aria-current="page"' in html
    assert 'href="/me/dashboard/"' in client.get("/me/datasets/").content.decode()  # linked from My datasets
