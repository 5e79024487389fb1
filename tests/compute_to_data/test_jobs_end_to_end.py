"""Compute jobs end to end through the real parts: an order paid on a real anvil, the trusted
runner in a real bubblewrap sandbox, results stored, the receipt recorded on chain and verified.
Celery runs eagerly here (a real worker process is in test_worker_integration.py)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from safetensors.numpy import load as load_safetensors

from chain.models import ChainListing, Order
from chain.units import epsilon_to_units
from chain.wrappers import Datatoken
from compute_to_data import tasks
from compute_to_data.models import ComputeJob, JobArtifact, PrivacyBudget
from compute_to_data.services import execution
from tests.compute_to_data.support import CANARY, LOGISTIC, job_submit, listed_on_chain

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_buyer_runs_a_dp_job_and_downloads_a_result_whose_receipt_verifies_on_chain(
    api, people, on_chain, compute_settings
):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    api.force_authenticate(buyer)
    quote = api.post(
        "/api/v1/jobs/quote/",
        {"dataset": dataset.pk, "algorithm": "dp-logistic-regression", "parameters": LOGISTIC},
        format="json",
    ).json()
    assert quote["order"]["problems"] == [], quote
    assert quote["parameters"]["learning_rate"] > 0  # defaults filled in
    assert "never rows" in quote["release"]

    job = job_submit(api, buyer, dataset)
    assert job["status"] == "finished", job
    assert job["progress"]["percent"] == 100
    assert job["params_hash"] == quote["params_hash"]
    spent = Decimal(job["epsilon_spent"])
    assert 0 < spent <= Decimal("1")
    assert job["settlement"] == "receipt" and job["order_status"] == "receipted"

    result = api.get(f"/api/v1/jobs/{job['id']}/result/").json()
    names = {a["name"] for a in result["artifacts"]}
    assert {"model.safetensors", "model.onnx", "model_card.json", "manifest.json"} <= names
    assert result["results"]["curve"], "the training curve is released"
    assert all(m["source"] in ("dp", "public") for m in result["results"]["metrics"])
    weights = next(a for a in result["artifacts"] if a["name"] == "model.safetensors")
    download = api.get(weights["download_url"])
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == weights["sha256"] == download["X-Content-SHA256"]
    assert load_safetensors(body), "the weights load with safetensors"
    card = json.loads(b"".join(api.get(f"/api/v1/jobs/{job['id']}/result/model_card.json/").streaming_content))
    assert "preprocessing" in json.dumps(card)

    # Nothing released or logged carries a value of the private rows.
    everything = (
        b"".join(b"".join(api.get(a["download_url"]).streaming_content) for a in result["artifacts"])
        + json.dumps(api.get(f"/api/v1/jobs/{job['id']}/logs/").json()).encode()
    )
    assert CANARY.encode() not in everything

    receipt = api.get(f"/api/v1/jobs/{job['id']}/receipt/").json()
    assert receipt["verified"] is True, receipt["checks"]
    assert {c["name"] for c in receipt["checks"]} >= {
        "dataset",
        "parameters",
        "results",
        "chain results",
        "chain epsilon",
    }

    # The provider sees the receipt, never the results.
    api.force_authenticate(provider)
    assert api.get(f"/api/v1/jobs/{job['id']}/receipt/").json()["verified"] is True
    assert api.get(f"/api/v1/jobs/{job['id']}/result/").status_code == 403
    assert api.get(f"/api/v1/jobs/{job['id']}/result/model.safetensors/").status_code == 403
    budget = api.get(f"/api/v1/datasets/{dataset.pk}/budget/").json()
    assert Decimal(budget["epsilon_spent"]) == spent and Decimal(budget["epsilon_reserved"]) == 0
    assert budget["jobs"][0]["id"] == job["id"]
    # On chain, the unused epsilon went back to the budget too.
    listing = ChainListing.objects.get(dataset=dataset)
    assert Datatoken(on_chain.w3, listing.datatoken_address).epsilon_ordered() == epsilon_to_units(spent)

    # A stranger sees nothing; a tampered artifact fails verification.
    from tests.factories import UserFactory

    api.force_authenticate(UserFactory(username="stranger"))
    assert api.get(f"/api/v1/jobs/{job['id']}/").status_code == 404
    artifact = JobArtifact.objects.get(job_id=job["id"], name="model.safetensors")
    with execution.results_storage().open(artifact.storage_name, "wb") as fh:
        fh.write(body[:-1] + bytes([body[-1] ^ 1]))
    api.force_authenticate(buyer)
    tampered = api.get(f"/api/v1/jobs/{job['id']}/receipt/").json()
    assert tampered["verified"] is False
    assert next(c for c in tampered["checks"] if c["name"] == "results")["ok"] is False


def test_each_algorithm_runs_on_the_same_dataset(api, people, on_chain, compute_settings):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff, epsilon_total="10", per_job="1")
    runs = {
        "dp-mlp-classifier": {**LOGISTIC, "hidden_sizes": [16, 8], "epsilon": 0.5},
        "dp-linear-regression": {
            "target": "score",
            "features": ["age", "dose"],
            "epochs": 3,
            "batch_size": 64,
            "epsilon": 0.5,
        },
        "dp-statistics": {"columns": ["age", "site", "label"], "epsilon": 0.5},
    }
    for algorithm, parameters in runs.items():
        job = job_submit(api, buyer, dataset, algorithm, parameters)
        assert job["status"] == "finished", (algorithm, job["reason"])
        names = {a["name"] for a in api.get(f"/api/v1/jobs/{job['id']}/result/").json()["artifacts"]}
        assert ("statistics.json" in names) if algorithm == "dp-statistics" else ("model.onnx" in names), names
    summary = api.get(f"/api/v1/datasets/{dataset.pk}/budget/").json()
    assert Decimal(summary["epsilon_spent"]) <= Decimal("1.5")
    assert len(summary["jobs"]) == 3


def test_bad_parameters_and_an_exhausted_budget_are_refused_before_paying(api, people, on_chain, compute_settings):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff, epsilon_total="1", per_job="1")
    api.force_authenticate(buyer)
    bad = api.post(
        "/api/v1/jobs/",
        {"dataset": dataset.pk, "algorithm": "dp-logistic-regression", "parameters": {**LOGISTIC, "epochs": 0}},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["field"] == "epochs"
    too_much = api.post(
        "/api/v1/jobs/",
        {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 1.5}},
        format="json",
    )
    assert too_much.status_code == 400 and too_much.json()["field"] == "epsilon"
    assert Order.objects.count() == 0  # nothing was paid

    first = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 1.0})
    assert first["status"] == "finished"
    left = Decimal("1") - Decimal(first["epsilon_spent"])
    refused = api.post(
        "/api/v1/jobs/",
        {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.5}},
        format="json",
    )
    assert refused.status_code == 409 and refused.json()["code"] == "budget_exhausted"
    assert Decimal(refused.json()["epsilon_left"]) == left
    assert Order.objects.count() == 1


def test_cancelling_a_queued_job_releases_its_budget_and_refunds_it_on_chain(
    api, people, on_chain, compute_settings, monkeypatch
):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)  # no worker picks it up
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.7})
    assert job["status"] == "queued"
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == Decimal("0.7")
    response = api.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert response.status_code == 202
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["status"] == "cancelled" and job["budget_state"] == "released"
    assert job["settlement"] == "refund" and job["order_status"] == "refunded"
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_reserved == 0
    listing = ChainListing.objects.get(dataset=dataset)
    assert Datatoken(on_chain.w3, listing.datatoken_address).epsilon_ordered() == 0
    # A finished or cancelled job cannot be cancelled again; nor can someone else's.
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 409
    api.force_authenticate(provider)
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 403


def test_a_second_delivery_of_the_run_task_does_nothing(api, people, on_chain, compute_settings):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.2})
    assert job["status"] == "finished"
    before = ComputeJob.objects.get(pk=job["id"])
    assert execution.job_run(job["id"]) is None
    after = ComputeJob.objects.get(pk=job["id"])
    assert (after.status, after.attempts, after.epsilon_spent) == (before.status, before.attempts, before.epsilon_spent)
    assert PrivacyBudget.objects.get(dataset=dataset).epsilon_spent == before.epsilon_spent


def test_algorithms_are_listed_with_their_parameters(api, db):
    body = api.get("/api/v1/algorithms/").json()
    names = {a["name"] for a in body["algorithms"]}
    assert names == {"dp-logistic-regression", "dp-mlp-classifier", "dp-linear-regression", "dp-statistics"}
    mlp = next(a for a in body["algorithms"] if a["name"] == "dp-mlp-classifier")
    epochs = next(p for p in mlp["parameters"] if p["name"] == "epochs")
    assert epochs["min"] >= 1 and epochs["max"] >= epochs["min"]
    assert "never rows" in body["release"]
