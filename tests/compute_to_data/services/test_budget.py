"""The privacy budget as the marketplace books it: reservations at the boundary, and concurrent
reservations that never pass the cap (row lock on PostgreSQL)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from common.errors import Conflict
from compute_to_data.models import ComputeJob, PrivacyBudget
from compute_to_data.services import budget as budget_services
from marketplace.models import Dataset
from tests.factories import UserFactory, make_dataset


def _job(dataset: Dataset, buyer, epsilon: str) -> ComputeJob:
    return ComputeJob.objects.create(
        buyer=buyer,
        dataset=dataset,
        algorithm="dp-statistics",
        parameters={},
        params_hash="0x" + "00" * 32,
        epsilon=Decimal(epsilon),
        delta=1e-6,
        status=ComputeJob.Status.PAID,
    )


def _reserve(job: ComputeJob) -> None:
    with transaction.atomic():
        budget_services.budget_reserve(job=job)
        job.save(update_fields=["budget_state"])


@pytest.fixture
def listed(provider, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    Dataset.objects.filter(pk=dataset.pk).update(epsilon_total=Decimal("3"), epsilon_per_job=Decimal("1"))
    dataset.refresh_from_db()
    return dataset


@pytest.mark.django_db
def test_reservation_up_to_exactly_the_cap_passes_and_one_more_is_refused_with_what_is_left(listed, buyer):
    for _ in range(2):
        _reserve(_job(listed, buyer, "1"))
    _reserve(_job(listed, buyer, "0.75"))
    with pytest.raises(Conflict) as refused:
        _reserve(_job(listed, buyer, "0.2501"))
    assert refused.value.code == "budget_exhausted"
    assert refused.value.extra["epsilon_left"] == "0.250000"
    assert "0.250000 left" in refused.value.detail
    _reserve(_job(listed, buyer, "0.25"))  # exactly what is left
    summary = budget_services.budget_summary(dataset=listed)
    assert summary.epsilon_left == 0 and summary.epsilon_reserved == Decimal("3")


@pytest.mark.django_db
def test_charge_books_exactly_the_reservation_and_release_gives_everything_back(listed, buyer):
    charged, released = _job(listed, buyer, "1"), _job(listed, buyer, "1")
    _reserve(charged)
    _reserve(released)
    with transaction.atomic():
        # The charge is the reservation: it cannot depend on the data.
        budget_services.budget_charge(job=charged)
        budget_services.budget_release(job=released)
    assert charged.epsilon_spent == Decimal("1")
    summary = budget_services.budget_summary(dataset=listed)
    assert summary.epsilon_reserved == 0 and summary.delta_reserved == 0
    assert summary.epsilon_spent == Decimal("1")
    assert summary.delta_spent == Decimal("0.000001")
    assert summary.epsilon_left == Decimal("2")
    # Charging twice (a task run twice) books nothing more.
    with transaction.atomic():
        budget_services.budget_charge(job=charged)
    assert budget_services.budget_summary(dataset=listed).epsilon_spent == Decimal("1")


@pytest.mark.django_db
def test_delta_composes_across_jobs_and_a_job_past_the_cumulative_delta_cap_is_refused(listed, buyer):
    Dataset.objects.filter(pk=listed.pk).update(epsilon_total=Decimal("100"), delta_total=3e-6)
    listed.refresh_from_db()
    for _ in range(3):
        _reserve(_job(listed, buyer, "0.1"))  # 1e-6 each: exactly the cap, no float drift
    summary = budget_services.budget_summary(dataset=listed)
    assert summary.delta_reserved == Decimal("0.000003") and summary.delta_left == 0
    assert summary.epsilon_left == Decimal("99.7")  # epsilon has room; delta does not
    with pytest.raises(Conflict) as refused:
        _reserve(_job(listed, buyer, "0.1"))
    assert refused.value.code == "budget_exhausted"
    assert "delta" in refused.value.detail and refused.value.extra["delta_left"] == "0e+0"
    with pytest.raises(Conflict):
        budget_services.budget_check_left(dataset=listed, epsilon=Decimal("0.1"), delta=1e-6)
    # A released job gives its delta back, so another can run.
    job = ComputeJob.objects.filter(dataset=listed, budget_state=ComputeJob.Budget.RESERVED).first()
    with transaction.atomic():
        budget_services.budget_release(job=job)
        job.save(update_fields=["budget_state"])
    _reserve(_job(listed, buyer, "0.1"))


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_reservations_never_pass_the_cap(provider, staff):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers anyway (make test runs on PostgreSQL)")
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    Dataset.objects.filter(pk=dataset.pk).update(epsilon_total=Decimal("3"), epsilon_per_job=Decimal("0.5"))
    buyers = [UserFactory(username=f"racer{i}") for i in range(20)]
    jobs = [_job(dataset, b, "0.5") for b in buyers]  # 20 x 0.5 = 10 asked of a budget of 3
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(job: ComputeJob) -> None:
        try:
            barrier.wait()
            _reserve(job)
            result = "reserved"
        except Conflict:
            result = "refused"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("reserved") == 6 and outcomes.count("refused") == 14
    budget = PrivacyBudget.objects.get(dataset=dataset)
    assert budget.epsilon_reserved == Decimal("3")
    assert ComputeJob.objects.filter(budget_state=ComputeJob.Budget.RESERVED).count() == 6
