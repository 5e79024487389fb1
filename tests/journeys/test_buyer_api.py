"""The buyer's journey over the REST API with a plain HTTP client against the live server (real
Celery worker, test anvil): every step of the browser journey has its API equivalent — search
and filter, the dataset's schema, mock rows, price, budget and receipts, the algorithms and
their parameter checks, a quote, paying in one transaction from the managed wallet, following
the job, the results and a download, and the receipt verified against the chain."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from decimal import Decimal

import pytest
import requests

from chain.models import ChainListing, ChainTransaction, Order
from chain.services.orders import RELEASE_TEXT
from chain.wrappers import Datatoken
from compute_to_data.models import ComputeJob
from marketplace.models import Dataset
from tests.browser_support import FACTORY_PASSWORD
from tests.factories import make_dataset

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.django_db(transaction=True)]

JOB = {
    "algorithm": "dp-logistic-regression",
    "parameters": {"target": "label", "epochs": 2, "batch_size": 64, "epsilon": 1},
}


def signed_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    answer = session.post(f"{base}/api/v1/auth/token/", data={"username": username, "password": FACTORY_PASSWORD})
    assert answer.status_code == 200, answer.text
    session.headers["Authorization"] = f"Token {answer.json()['token']}"
    return session


def ok(response: requests.Response, status: int = 200) -> dict | list:
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.text}"
    return response.json()


def test_buyer_journey_over_the_api(stack):
    base, api = stack.url, f"{stack.url}/api/v1"
    dataset = stack.listed(title="Cardiology outpatients", price="3", epsilon_total="10", per_job="2")
    make_dataset(
        owner=stack.provider,
        title="Retail basket transactions",
        tags=("retail",),
        price="25",
        status=Dataset.Status.LISTED,
        moderator=stack.staff,
    )
    listing = ChainListing.objects.get(dataset=dataset)
    buyer = signed_in(base, stack.buyer.username)
    anonymous = requests.Session()

    # --- search and filter ---------------------------------------------------------------------------
    assert ok(anonymous.get(f"{api}/datasets/"))["count"] == 2
    found = ok(anonymous.get(f"{api}/datasets/", params={"q": "cardiology"}))
    assert [d["id"] for d in found["results"]] == [dataset.pk]
    filtered = ok(anonymous.get(f"{api}/datasets/", params={"tags": "health", "price_max": "10", "sort": "price"}))
    assert [d["id"] for d in filtered["results"]] == [dataset.pk]

    # --- the dataset page's facts: schema, mock rows, price, licence, budget left, receipts -----------
    detail = ok(anonymous.get(f"{api}/datasets/{dataset.pk}/"))
    assert Decimal(detail["price"]) == 3 and detail["licence"] == "CC-BY-4.0"
    schema = ok(anonymous.get(f"{api}/datasets/{dataset.pk}/schema/"))
    assert [c["name"] for c in schema["declared"]["columns"]] == ["age", "dose", "site", "score", "label"]
    mock = anonymous.get(f"{api}/datasets/{dataset.pk}/mock/", params={"rows": 10})
    assert mock.status_code == 200
    rows = list(csv.reader(io.StringIO(mock.text)))
    assert rows[0] == ["age", "dose", "site", "score", "label"] and len(rows) == 11
    budget = ok(anonymous.get(f"{api}/datasets/{dataset.pk}/budget/"))
    assert Decimal(budget["epsilon_left"]) == 10 and Decimal(budget["epsilon_per_job"]) == 2
    assert ok(anonymous.get(f"{api}/datasets/{dataset.pk}/receipts/")) == []
    chain_state = ok(anonymous.get(f"{api}/datasets/{dataset.pk}/chain/"))
    assert chain_state["datatoken_address"].lower() == listing.datatoken_address.lower()

    # --- algorithms, and the parameter checks the form shows inline ------------------------------------
    algorithms = ok(anonymous.get(f"{api}/algorithms/"))
    logistic = next(a for a in algorithms["algorithms"] if a["name"] == "dp-logistic-regression")
    assert {p["name"] for p in logistic["parameters"]} >= {"target", "epochs", "epsilon", "delta"}
    too_much = {**JOB, "dataset": dataset.pk, "parameters": {**JOB["parameters"], "epsilon": 5}}
    refused = buyer.post(f"{api}/jobs/quote/", json=too_much)
    assert refused.status_code in (400, 409), refused.text
    assert refused.json()["field"] == "epsilon" and "2" in refused.json()["detail"]
    no_target = {**JOB, "dataset": dataset.pk, "parameters": {"epsilon": 1}}
    refused = buyer.post(f"{api}/jobs/quote/", json=no_target)
    assert refused.status_code == 400 and refused.json()["field"] == "target", refused.text

    # --- a quote before paying: price, epsilon, what will be released -----------------------------------
    quote = ok(buyer.post(f"{api}/jobs/quote/", json={**JOB, "dataset": dataset.pk}))
    assert quote["problems"] == []
    assert Decimal(quote["order"]["price"]) == 3 and Decimal(quote["epsilon"]) == 1
    assert Decimal(quote["epsilon_left_after"]) == 9
    assert quote["release"] == RELEASE_TEXT
    assert not Order.objects.exists()

    # --- pay in one transaction, then follow the job ------------------------------------------------------
    job = ok(buyer.post(f"{api}/jobs/", json={**JOB, "dataset": dataset.pk}), 202)
    assert job["status"] == "created" and job["params_hash"] == quote["params_hash"]
    seen: list[str] = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        job = ok(buyer.get(f"{api}/jobs/{job['id']}/"))
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("finished", "failed", "cancelled", "rejected"):
            break
        time.sleep(0.25)
    assert job["status"] == "finished", (seen, job["reason"], stack.worker_log.read_text()[-3000:])
    assert "running" in seen, seen  # the progress was followable along the way
    order = Order.objects.get(pk=job["order"])
    assert ChainTransaction.objects.filter(order=order, purpose=ChainTransaction.Purpose.ORDER).count() == 1
    assert ok(buyer.get(f"{api}/orders/{order.pk}/"))["chain_order_id"] == job["chain_order_id"]

    # --- results: curves and metrics for the charts, and the downloads ------------------------------------
    result = ok(buyer.get(f"{api}/jobs/{job['id']}/result/"))
    assert result["results"]["curve"] and result["results"]["epsilon_curve"]
    assert any(m["source"] == "dp" for m in result["results"]["metrics"])
    artifact = result["artifacts"][0]
    download = buyer.get(base + artifact["download_url"])
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"] == download.headers["X-Content-SHA256"]
    # Only the buyer gets the results.
    assert signed_in(base, stack.provider.username).get(f"{api}/jobs/{job['id']}/result/").status_code == 403

    # --- the receipt, verified against the chain ------------------------------------------------------------
    stack.wait_for(lambda: Order.objects.get(pk=order.pk).status == Order.Status.RECEIPTED)
    receipt = ok(buyer.get(f"{api}/jobs/{job['id']}/receipt/"))
    assert receipt["verified"] is True, receipt
    assert {c["name"] for c in receipt["checks"]} >= {"chain results", "chain epsilon", "chain order"}
    assert Datatoken(stack.chain.w3, listing.datatoken_address).order_status(job["chain_order_id"]) == "receipted"

    # --- the dataset's public receipts: the buyer sees their job, everyone else an anonymous row ----------
    mine = ok(buyer.get(f"{api}/datasets/{dataset.pk}/receipts/"))
    public = ok(anonymous.get(f"{api}/datasets/{dataset.pk}/receipts/"))
    assert len(mine) == len(public) == 1
    assert mine[0]["job"] == job["id"] and public[0]["job"] is None
    assert public[0]["tx_hash"] == receipt["receipt"]["tx_hash"]
    assert public[0]["result_hash"] == receipt["receipt"]["result_hash"]
    assert public[0]["algorithm"] == "dp-logistic-regression"
    assert Decimal(public[0]["epsilon_spent"]) == ComputeJob.objects.get(pk=job["id"]).epsilon_spent
    assert "buyer" not in public[0]
    budget = ok(anonymous.get(f"{api}/datasets/{dataset.pk}/budget/"))
    assert Decimal(budget["epsilon_left"]) < 10
