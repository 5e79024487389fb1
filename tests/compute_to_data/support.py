"""Helpers the compute tests share: the hostile programs, a learnable training table with a canary
in it, and a dataset listed on chain with a job submitted over the API."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np

from chain.models import ChainListing
from marketplace.models import Dataset
from tests.factories import make_dataset

HOSTILE = Path(__file__).parent / "hostile"
# A value planted in the private data: it must never appear in anything released or logged.
CANARY = "zz-canary-7f3a"


def training_csv(rows: int = 400, seed: int = 7) -> bytes:
    """A learnable table: ``label`` is true when ``dose + 0.5*age_scaled`` is high, with noise."""
    rng = np.random.default_rng(seed)
    lines = ["age,dose,site,score,label"]
    for i in range(rows):
        age = int(rng.integers(20, 80))
        dose = float(rng.uniform(0, 10))
        site = CANARY if i == 3 else ["north", "south", "east"][int(rng.integers(0, 3))]
        signal = dose / 10 + 0.5 * (age - 20) / 60 + rng.normal(0, 0.1)
        score = round(20 + 60 * signal, 3)
        lines.append(f"{age},{dose:.3f},{site},{score},{'true' if signal > 0.75 else 'false'}")
    return ("\n".join(lines) + "\n").encode()


LOGISTIC = {"target": "label", "features": ["age", "dose", "site"], "epochs": 3, "batch_size": 64, "epsilon": 1.0}


def listed_on_chain(api, provider, staff, *, epsilon_total: str = "10", per_job: str = "1") -> Dataset:
    """A listed dataset of :func:`training_csv` rows, published on chain by its provider."""
    dataset = make_dataset(
        owner=provider,
        price="3",
        status=Dataset.Status.LISTED,
        moderator=staff,
        data=training_csv(),
        filename="trial.csv",
    )
    Dataset.objects.filter(pk=dataset.pk).update(epsilon_total=Decimal(epsilon_total), epsilon_per_job=Decimal(per_job))
    api.force_authenticate(provider)
    assert api.post(f"/api/v1/datasets/{dataset.pk}/publish/").status_code == 202
    assert ChainListing.objects.get(dataset=dataset).state == ChainListing.State.PUBLISHED
    dataset.refresh_from_db()
    return dataset


def job_submit(api, buyer, dataset, algorithm="dp-logistic-regression", parameters=None) -> dict:
    """The job as its buyer reads it back after submitting it over the API."""
    api.force_authenticate(buyer)
    body = {"dataset": dataset.pk, "algorithm": algorithm, "parameters": parameters or LOGISTIC}
    response = api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 202, response.content
    return api.get(f"/api/v1/jobs/{response.json()['id']}/").json()


# A runner that never ends by itself: what the cancel and worker tests stop.
SLEEPER = "import time\nwhile True:\n    time.sleep(1)\n"
