"""The whole product running for a journey: pytest-django's live server (in this process), a
real Celery worker process on the `celery` and `compute` queues, the test anvil with the
session's deployment, funded managed wallets for the provider and the buyer, and Chromium.

``stack`` is the entry point: ``stack.url``, ``stack.provider`` / ``stack.buyer`` /
``stack.staff`` (password ``tests.browser_support.FACTORY_PASSWORD``), ``stack.chain`` (the
tests.chain helper: ``w3``, ``accounts``, ``usdc``, ``fund``...), ``stack.wait_for(predicate)``
(fails with the worker's log on timeout) and ``stack.listed(...)`` (a listed dataset published on
chain, with a learnable CSV)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import browser  # noqa: F401
from tests.compute_to_data.conftest import (  # noqa: F401
    _session_chain,
    accounts,
    anvil,
    chain,
    compute_settings,
    compute_worker,
    deployment,
    on_chain,
    people,
    w3,
)
from tests.compute_to_data.support import training_csv
from tests.worker_support import wait_for


@dataclass
class Stack:
    url: str
    provider: Any
    buyer: Any
    staff: Any
    chain: Any
    worker_log: Path

    def wait_for(self, predicate, timeout: float = 90.0) -> None:
        wait_for(predicate, timeout=timeout, log=self.worker_log)

    def listed(
        self,
        *,
        title: str = "Cardiology outpatients",
        price: str = "3",
        epsilon_total: str = "10",
        per_job: str = "2",
        data: bytes | None = None,
        **fields,
    ):
        """A dataset of ``stack.provider``, approved by ``stack.staff`` and published on chain
        (through the services; the worker confirms the publish transaction)."""
        from chain.models import ChainListing
        from chain.services.publishing import dataset_publish
        from chain.wrappers import Datatoken
        from marketplace.models import Dataset
        from tests.factories import make_dataset

        dataset = make_dataset(
            owner=self.provider,
            title=title,
            price=price,
            status=Dataset.Status.LISTED,
            moderator=self.staff,
            data=data if data is not None else training_csv(),
            filename="data.csv",
            **fields,
        )
        Dataset.objects.filter(pk=dataset.pk).update(
            epsilon_total=Decimal(epsilon_total), epsilon_per_job=Decimal(per_job)
        )
        dataset.refresh_from_db()
        dataset_publish(dataset=dataset, user=self.provider)
        self.wait_for(lambda: ChainListing.objects.get(dataset=dataset).state == ChainListing.State.PUBLISHED)
        # A v2 datatoken starts closed; the operator's opening transaction follows the listing.
        listing = ChainListing.objects.get(dataset=dataset)
        self.wait_for(lambda: Datatoken(self.chain.w3, listing.datatoken_address).ordering_open())
        dataset.refresh_from_db()
        return dataset


@pytest.fixture
def stack(live_server, people, on_chain, compute_settings, compute_worker) -> Stack:
    start, _eager_again, log = compute_worker
    start(str(compute_settings.COMPUTE_RUNNER_DIR))
    provider, buyer, staff = people
    return Stack(url=live_server.url, provider=provider, buyer=buyer, staff=staff, chain=on_chain, worker_log=log)
