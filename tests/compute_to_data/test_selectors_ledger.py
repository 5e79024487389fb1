"""The public privacy ledger of a dataset (page and API), fixed failure reasons and coarse times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from compute_to_data.failures import FAILURES, failure_for_run, failure_text
from compute_to_data.models import ComputeJob
from compute_to_data.services import budget as budget_services
from compute_to_data.services import execution
from compute_to_data.services import jobs as job_services
from marketplace.models import Dataset
from tests.factories import UserFactory, make_dataset, make_reserved_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(provider, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    Dataset.objects.filter(pk=dataset.pk).update(epsilon_total=Decimal("5"), epsilon_per_job=Decimal("1"))
    dataset.refresh_from_db()
    return dataset


def _ran(dataset, buyer, epsilon: str, *, delta: float = 1e-6, finished: datetime | None = None) -> ComputeJob:
    """A job that reserved its budget and ran (its budget is charged), as the worker leaves it."""
    job = ComputeJob.objects.create(
        buyer=buyer,
        dataset=dataset,
        algorithm="dp-statistics",
        parameters={"accountant": "rdp"},
        params_hash="0x" + "00" * 32,
        epsilon=Decimal(epsilon),
        delta=delta,
        status=ComputeJob.Status.PAID,
        dataset_hash=dataset.commitment,
    )
    with transaction.atomic():
        budget_services.budget_reserve(job=job)
        budget_services.budget_charge(job=job)
        job.status = ComputeJob.Status.FINISHED
        job.started_at = job.finished_at = finished or datetime(2026, 11, 2, 14, 37, 12, tzinfo=UTC)
        job.save()
    return job


def test_the_ledger_lists_every_release_with_running_totals_and_names_no_buyer(api, listed, buyer, provider):
    other = UserFactory(username="other-buyer")
    first = _ran(listed, buyer, "0.5", finished=datetime(2026, 11, 2, 14, 37, 12, tzinfo=UTC))
    _ran(listed, other, "1", delta=2e-6, finished=datetime(2026, 11, 3, 9, 5, 59, tzinfo=UTC))
    # A job still waiting for payment released nothing: not in the ledger.
    ComputeJob.objects.create(
        buyer=buyer, dataset=listed, algorithm="dp-statistics", parameters={}, params_hash="0x", epsilon=1, delta=1e-6
    )

    body = api.get(f"/api/v1/datasets/{listed.pk}/ledger/").json()
    assert Decimal(body["epsilon_cap"]) == 5 and Decimal(body["epsilon_spent"]) == Decimal("1.5")
    assert body["delta_spent"] == pytest.approx(3e-6) and body["delta_cap"] == pytest.approx(listed.delta_total)
    entries = body["entries"]
    assert [Decimal(e["epsilon"]) for e in entries] == [Decimal("0.5"), Decimal("1")]
    assert [Decimal(e["epsilon_total_after"]) for e in entries] == [Decimal("0.5"), Decimal("1.5")]
    assert [e["delta_total_after"] for e in entries] == [pytest.approx(1e-6), pytest.approx(3e-6)]
    assert entries[0]["time"] == "2026-11-02T14:00:00Z", "times are to the hour"
    assert entries[0]["accountant"] == "rdp"
    assert all(e["job"] is None for e in entries), "anonymous visitors see no job ids"
    assert all(e["chain_matches"] is None for e in entries) and body["chain_ok"] is None  # nothing on chain
    assert "buyer" not in str(body) and buyer.username not in str(body)

    api.force_authenticate(buyer)
    seen = [e["job"] for e in api.get(f"/api/v1/datasets/{listed.pk}/ledger/").json()["entries"]]
    assert seen == [first.pk, None], "a buyer recognises their own job only"
    api.force_authenticate(provider)
    assert all(e["job"] for e in api.get(f"/api/v1/datasets/{listed.pk}/ledger/").json()["entries"])


def test_the_ledger_page_shows_the_totals_against_both_caps(client, listed, buyer):
    _ran(listed, buyer, "0.5")
    page = client.get(f"/datasets/{listed.pk}/ledger/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Privacy ledger" in text and 'id="ledger-table"' in text
    assert "0.5" in text and "of the cap ε 5" in text
    assert "cumulative cap" in text
    # The dataset page links to it from the budget panel, with delta beside epsilon.
    detail = client.get(f"/datasets/{listed.pk}/").content.decode()
    assert f"/datasets/{listed.pk}/ledger/" in detail and 'id="delta-budget"' in detail


def test_failure_reasons_come_from_one_fixed_table():
    # The buyer never sees the program's words: only the code of what happened picks a sentence.
    assert failure_for_run(limit="memory", runner_error_code=None) == "limit_memory"
    assert failure_for_run(limit=None, runner_error_code="internal") == "runner_error"
    assert failure_for_run(limit=None, runner_error_code="invalid_data") == "dataset_unreadable"
    assert failure_for_run(limit=None, runner_error_code="invalid_parameters") == "buyer_input"
    assert failure_for_run(limit=None, runner_error_code="anything the program says") == "runner_error"
    assert failure_for_run(limit="cancelled", runner_error_code=None) == "cancelled_running"
    for code, failure in FAILURES.items():
        text = failure_text(code)
        assert "{" not in text and text.endswith("."), code
        assert failure.caused_by in ("buyer", "limit", "platform", "provider", "moderator")
    assert failure_text("no-such-code") == failure_text("platform")


def test_a_failed_job_shows_the_fixed_sentence_and_who_caused_it(api, listed, buyer):
    job = make_reserved_job(listed, buyer, status=ComputeJob.Status.RUNNING, data_touched_at=datetime.now(UTC))
    with transaction.atomic():
        job_services.job_fail(job_services._locked(job.pk), "limit_memory", limit="memory")
    api.force_authenticate(buyer)
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "failed" and body["failure"] == "limit_memory"
    assert body["failure_caused_by"] == "limit"
    assert body["reason"].startswith("The job hit its memory limit (")


def test_released_times_are_coarse():
    assert execution.runner_time_bucket(0.4) == 60.0
    assert execution.runner_time_bucket(59.9) == 60.0
    assert execution.runner_time_bucket(61) == 120.0
    moment = datetime(2026, 1, 1, 10, 11, 12, 345678, tzinfo=UTC)
    assert job_services.time_bucket(moment) == datetime(2026, 1, 1, 10, 11, tzinfo=UTC)
