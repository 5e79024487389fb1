"""The auditor's test: jobs on neighbouring datasets (one row added, removed, changed, or a
malformed row) release the same everything except the DP outputs themselves. Through the real
parts: orders on anvil, the trusted runner in bubblewrap, results stored, receipts on chain."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from compute_to_data.models import ComputeJob
from marketplace.models import Dataset
from marketplace.services.datasets import dataset_schema_declare
from marketplace.services.moderation import dataset_transition
from tests.compute_to_data.support import job_submit, training_csv
from tests.factories import make_dataset

pytestmark = [pytest.mark.chain, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# One declared schema for every neighbour: the schema is public, so it must not follow the data.
SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "min": 0, "max": 100, "nullable": True},
        {"name": "dose", "type": "float", "min": 0, "max": 10, "nullable": True},
        {"name": "site", "type": "categorical", "categories": ["north", "south", "east"], "nullable": True},
        {"name": "score", "type": "float", "min": 0, "max": 100, "nullable": True},
        {"name": "label", "type": "boolean", "nullable": True},
    ]
}
PUBLIC_ROWS = 400
LOGISTIC = {"target": "label", "features": ["age", "dose", "site"], "epochs": 2, "batch_size": 64, "epsilon": 1.0}
STATISTICS = {"columns": ["age", "dose", "site", "label"], "epsilon": 0.5}


def _neighbours() -> dict[str, bytes]:
    base = training_csv(400)
    lines = base.rstrip(b"\n").split(b"\n")
    header, rows = lines[0], lines[1:]
    changed = list(rows)
    changed[20] = b"99,9.999,east,99.5,false"
    # Not a number, bad UTF-8, a number too large for a float, a boolean that is not one.
    malformed = b"abc,\xff\xfe1,no\xc3rth,1e400,maybe"

    def csv(body: list[bytes]) -> bytes:
        return b"\n".join([header, *body]) + b"\n"

    return {
        "base": base,
        "removed": csv(rows[:10] + rows[11:]),
        "changed": csv(changed),
        "malformed": csv([*rows, malformed]),
    }


def _listed_with(api, provider, staff, data: bytes, name: str) -> Dataset:
    dataset = make_dataset(owner=provider, price="1", data=data, filename=f"{name}.csv", declare=False)
    dataset = dataset_schema_declare(dataset=dataset, actor=provider, schema=SCHEMA, public_row_count=PUBLIC_ROWS)
    for action, actor in (("submit", provider), ("approve", staff)):
        dataset = dataset_transition(dataset=dataset, actor=actor, action=action, reason="neighbour test")
    api.force_authenticate(provider)
    assert api.post(f"/api/v1/datasets/{dataset.pk}/publish/").status_code == 202
    dataset.refresh_from_db()
    return dataset


def _released_public(api, job: dict) -> dict[str, Any]:
    """Every field of what a job released that is not itself a DP output."""
    job_id = job["id"]
    row = ComputeJob.objects.get(pk=job_id)
    results = api.get(f"/api/v1/jobs/{job_id}/result/").json() if job["status"] == "finished" else {}
    manifest = results.get("results", {})
    card: dict[str, Any] = {}
    if any(a["name"] == "model_card.json" for a in results.get("artifacts", [])):
        card = json.loads(b"".join(api.get(f"/api/v1/jobs/{job_id}/result/model_card.json/").streaming_content))
        card.pop("metrics", None)
        card.pop("curve", None)
    receipt = job["receipt"] or {}
    return {
        "status": job["status"],
        "failure": job["failure"],
        "reason": job["reason"],
        "limit_hit": job["limit_hit"],
        "budget_state": job["budget_state"],
        "epsilon_spent": job["epsilon_spent"],
        "runner_seconds": row.runner_seconds,
        "params_hash": job["params_hash"],
        "runner_hash": receipt.get("runner_hash"),
        "receipt_epsilon": receipt.get("epsilon_spent"),
        # Block numbers and on-chain order ids are public facts of the chain, not of the data.
        "log": [
            (e["source"], re.sub(r"(block|order) \d+", r"\1 N", e["message"]))
            for e in api.get(f"/api/v1/jobs/{job_id}/logs/").json()
        ],
        "artifacts": sorted((a["name"], a["kind"], a["description"]) for a in results.get("artifacts", [])),
        "weights_size": [a["size"] for a in results.get("artifacts", []) if a["name"] == "model.safetensors"],
        "hyper": {
            k: manifest.get(k)
            for k in (
                "epsilon_spent",
                "delta",
                "accountant",
                "noise_multiplier",
                "sample_rate",
                "steps",
                "epsilon_curve",
            )
        },
        "metric_names": [(m["name"], m["source"], m["description"]) for m in manifest.get("metrics") or []],
        "curve_public": [(c["epoch"], c["step"], c["epsilon"]) for c in manifest.get("curve") or []],
        "model_card": card,
    }


def test_neighbouring_datasets_release_identical_non_dp_fields(api, people, on_chain, compute_settings):
    provider, buyer, staff = people
    released: dict[str, dict[str, Any]] = {}
    statistics: dict[str, dict[str, Any]] = {}
    for name, data in _neighbours().items():
        dataset = _listed_with(api, provider, staff, data, name)
        job = job_submit(api, buyer, dataset, "dp-logistic-regression", LOGISTIC)
        assert job["status"] == "finished", (name, job["reason"])
        released[name] = _released_public(api, job)
        if name in ("base", "malformed"):
            job = job_submit(api, buyer, dataset, "dp-statistics", STATISTICS)
            assert job["status"] == "finished", (name, job["reason"])
            statistics[name] = _released_public(api, job)

    base = released.pop("base")
    assert base["epsilon_spent"] is not None and float(base["epsilon_spent"]) == LOGISTIC["epsilon"]
    # Opacus's rule over the public training rows (the public count less the 20% holdout).
    public_training_rows = round(PUBLIC_ROWS * 0.8)
    assert base["hyper"]["sample_rate"] == pytest.approx(1 / math.ceil(public_training_rows / LOGISTIC["batch_size"]))
    for name, other in released.items():
        for key in base:
            assert other[key] == base[key], f"{name}: {key} differs from the base dataset's"
    assert statistics["malformed"] == statistics["base"]
    # The ledger of each dataset books the same release, and matches the chain.
    booked = set()
    for dataset in Dataset.objects.all():
        ledger = api.get(f"/api/v1/datasets/{dataset.pk}/ledger/").json()
        assert ledger["chain_ok"] is True, ledger
        first = ledger["entries"][0]
        booked.add((first["algorithm"], first["epsilon"], first["delta"], first["accountant"]))
    assert len(booked) == 1, booked
