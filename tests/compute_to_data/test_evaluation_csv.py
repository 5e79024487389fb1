"""A buyer's own evaluation rows: exact metrics labelled public beside the DP ones, through the
real parts (order on anvil, the runner in bubblewrap); refused before paying when unusable."""

from __future__ import annotations

import pytest

from tests.compute_to_data.support import LOGISTIC, listed_on_chain, training_csv

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_buyer_attaches_their_own_evaluation_csv_and_gets_exact_public_metrics(
    api, people, on_chain, compute_settings
):
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    api.force_authenticate(buyer)
    own_rows = training_csv(120, seed=99).decode()
    body = {"dataset": dataset.pk, "algorithm": "dp-logistic-regression", "parameters": LOGISTIC}

    # Unusable files are refused before anything is paid.
    lacking = api.post("/api/v1/jobs/", {**body, "evaluation_csv": "age,dose\n1,2\n"}, format="json")
    assert lacking.status_code == 400 and lacking.json()["code"] == "invalid_evaluation_csv"
    assert "site" in lacking.json()["detail"] and "label" in lacking.json()["detail"]
    stats = api.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset.pk,
            "algorithm": "dp-statistics",
            "parameters": {"epsilon": 0.5},
            "evaluation_csv": own_rows,
        },
        format="json",
    )
    assert stats.status_code == 400 and stats.json()["code"] == "invalid_evaluation_csv"

    created = api.post("/api/v1/jobs/", {**body, "evaluation_csv": own_rows}, format="json")
    assert created.status_code == 202, created.content
    job = api.get(f"/api/v1/jobs/{created.json()['id']}/").json()
    assert job["status"] == "finished", job["reason"]
    metrics = {m["name"]: m for m in api.get(f"/api/v1/jobs/{job['id']}/result/").json()["results"]["metrics"]}
    assert metrics["eval_rows"]["value"] == 120 and metrics["eval_rows"]["source"] == "public"
    assert metrics["eval_accuracy"]["source"] == "public" and 0.5 < metrics["eval_accuracy"]["value"] <= 1
    assert metrics["dp_accuracy"]["source"] == "dp"
