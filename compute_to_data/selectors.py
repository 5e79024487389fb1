"""Reads of compute jobs."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from chain.models import Order
from compute_to_data.models import ComputeJob
from marketplace.models import Dataset, User


def jobs_on_dataset_visible(*, dataset: Dataset, user: User | AnonymousUser | None) -> QuerySet[ComputeJob]:
    """The jobs run on ``dataset`` that ``user`` may see: every one for the provider and staff,
    their own for a buyer, none for an anonymous visitor (``None`` or ``AnonymousUser``)."""
    if not isinstance(user, User):
        return ComputeJob.objects.none()
    jobs = ComputeJob.objects.filter(dataset=dataset).select_related("buyer", "order")
    if user.is_staff or dataset.owner_id == user.pk:
        return jobs
    return jobs.filter(buyer=user)


def job_ids_named_for(*, dataset: Dataset, user: User | AnonymousUser | None, job_ids: list[int]) -> set[int]:
    """Which of ``job_ids`` (jobs on ``dataset``) public lists may name for ``user``: every one for
    the provider and staff, a buyer's own, none for anyone else (one query)."""
    return set(jobs_on_dataset_visible(dataset=dataset, user=user).filter(pk__in=job_ids).values_list("pk", flat=True))


def receipts_on_dataset(*, dataset: Dataset) -> QuerySet[ComputeJob]:
    """The jobs on ``dataset`` whose receipt is recorded on chain, newest first: public, like the
    ``ReceiptRecorded`` events themselves. Callers show when, which algorithm, the epsilon spent
    and the receipt's hashes and transaction; never who bought, except to that buyer."""
    return (
        ComputeJob.objects.filter(
            dataset=dataset,
            settlement=ComputeJob.Settlement.RECEIPT,
            order__status=Order.Status.RECEIPTED,
        )
        .select_related("order")
        .order_by("-order__settled_at", "-id")
    )
