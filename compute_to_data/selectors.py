"""Reads of compute jobs."""

from __future__ import annotations

from django.db.models import QuerySet

from compute_to_data.models import ComputeJob
from marketplace.models import Dataset, User


def jobs_on_dataset_visible(*, dataset: Dataset, user: User) -> QuerySet[ComputeJob]:
    """The jobs run on ``dataset`` that ``user`` may see: every one for the provider and staff,
    their own for a buyer, none for an anonymous visitor."""
    if not user.is_authenticated:
        return ComputeJob.objects.none()
    jobs = ComputeJob.objects.filter(dataset=dataset).select_related("buyer", "order")
    if user.is_staff or dataset.owner_id == user.pk:
        return jobs
    return jobs.filter(buyer=user)
