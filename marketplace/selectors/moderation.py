"""Reading moderation state: the queue, reports and the audit log, filtered by who asks."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from common.errors import InvalidInput, PermissionDenied
from marketplace.models import Dataset, ModerationLogEntry, Report, User

EDIT_PENDING = "edit_pending"


def moderation_queue(
    *, actor: User, status: str = Dataset.Status.PENDING_REVIEW, query: str = "", reported_only: bool = False
) -> QuerySet[Dataset]:
    """Datasets for moderators to act on, oldest first, with their open report counts.
    ``status="edit_pending"``: datasets whose owner's edit of the public text awaits review."""
    if not actor.is_staff:
        raise PermissionDenied("Only moderators can see the moderation queue.")
    if status not in Dataset.Status.values and status not in ("all", EDIT_PENDING):
        raise InvalidInput(f"Unknown status '{status}'.", code="invalid_status")
    if "\x00" in query:
        raise InvalidInput("The search contains a NUL character.", code="invalid_query")
    qs = (
        Dataset.objects.select_related("owner")
        .prefetch_related("tags")
        .annotate(open_reports=Count("reports", filter=Q(reports__status=Report.Status.OPEN)))
    )
    if status == EDIT_PENDING:
        qs = qs.filter(pending_edit_at__isnull=False).order_by("pending_edit_at", "id")
    elif status != "all":
        qs = qs.filter(status=status)
    if query:
        qs = qs.filter(Q(title__icontains=query) | Q(owner__username__icontains=query))
    if reported_only:
        qs = qs.filter(open_reports__gt=0)
    return qs if status == EDIT_PENDING else qs.order_by("updated_at", "id")


def moderation_log(*, actor: User, dataset: Dataset | None = None) -> QuerySet[ModerationLogEntry]:
    """Staff see every entry; a provider sees the entries of their own datasets."""
    qs = ModerationLogEntry.objects.select_related("actor", "dataset")
    if not actor.is_staff:
        qs = qs.filter(dataset__owner=actor)
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    return qs.order_by("-created_at", "-id")


def reports_visible(*, actor: User, dataset: Dataset | None = None, status: str | None = None) -> QuerySet[Report]:
    """Staff see all reports; other users see the reports they filed."""
    qs = Report.objects.select_related("dataset", "reporter", "resolved_by")
    if not actor.is_staff:
        qs = qs.filter(reporter=actor)
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")
