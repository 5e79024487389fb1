"""The one door for listing state changes, reports and the audit log."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, IllegalTransition, InvalidInput, PermissionDenied
from common.tasks import enqueue
from marketplace.models import Dataset, ModerationLogEntry, Report, Tag, User
from marketplace.signals import dataset_status_changed

STAFF_ACTIONS = {"approve", "reject", "delist", "relist"}
REASON_REQUIRED = STAFF_ACTIONS
MAX_REASON = 2000


def _reason_clean(reason: str | None, *, required: bool, what: str) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise InvalidInput(f"A reason is required to {what}.", code="reason_required")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"The reason is longer than {MAX_REASON} characters.", code="reason_too_long")
    return reason


def dataset_transition(*, dataset: Dataset, actor: User, action: str, reason: str = "") -> Dataset:
    """Move a listing through its status pipeline (``Dataset.TRANSITIONS``) and log it.

    ``submit`` is the owner's; every other action is staff's and needs a reason. Runs under
    SELECT FOR UPDATE on the dataset row, so two moderators cannot both decide."""
    if action not in Dataset.TRANSITIONS:
        raise InvalidInput(f"Unknown action '{action}'.", code="unknown_action")
    if action in STAFF_ACTIONS and not actor.is_staff:
        raise PermissionDenied("Only moderators can do that.")
    if action == "submit" and dataset.owner_id != actor.pk:
        raise PermissionDenied("Only the dataset's owner can submit it for review.")
    if action == "submit" and not actor.email_verified:
        # Moderators and buyers must be able to reach whoever lists data.
        raise PermissionDenied(
            "Confirm your e-mail address before submitting a dataset for review: follow the link we sent, or "
            "send a new one from your profile.",
            code="email_unverified",
        )
    reason = _reason_clean(reason, required=action in REASON_REQUIRED, what=action)
    allowed_from, to_status = Dataset.TRANSITIONS[action]
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.status not in allowed_from:
            raise IllegalTransition(
                f"Cannot {action} a dataset that is {locked.get_status_display().lower()}; "
                f"{action} applies to: {', '.join(sorted(allowed_from))}.",
                extra={"status": locked.status},
            )
        if action == "submit":
            _submit_checks(locked)
        from_status = locked.status
        locked.status = to_status
        if to_status == Dataset.Status.LISTED and locked.listed_at is None:
            locked.listed_at = timezone.now()
        locked.save(update_fields=["status", "listed_at", "updated_at"])
        entry = ModerationLogEntry.objects.create(
            dataset=locked,
            actor=actor,
            action=action,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
        entry_id = entry.pk
        transaction.on_commit(lambda: _notify("notify_moderation_entry_task", entry_id))
        # Receivers (the chain's operator ordering flag) act once the new status is committed.
        dataset_id = locked.pk
        transaction.on_commit(
            lambda: dataset_status_changed.send(sender=Dataset, dataset_id=dataset_id, status=to_status)
        )
    return locked


def dataset_edit_decide(
    *, dataset: Dataset, actor: User, approve: bool, reason: str, submitted_at: dt.datetime | None = None
) -> Dataset:
    """A moderator approves or rejects the owner's pending edit of a listed dataset's public text
    (``Dataset.pending_edit``, see ``datasets.dataset_update``); a reason is required. Approving
    shows the edit in the catalogue; rejecting drops it and the approved text stays. Either way
    the listing stays up. ``submitted_at``, the ``pending_edit_at`` of the edit the moderator
    read, makes the decision apply to that edit only: an owner who swaps the text while it is
    being read gets a 409, not an approval. Runs under SELECT FOR UPDATE on the dataset row."""
    if not actor.is_staff:
        raise PermissionDenied("Only moderators can do that.")
    what = "approve an edit" if approve else "reject an edit"
    reason = _reason_clean(reason, required=True, what=what)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        edit, edit_at = locked.pending_edit, locked.pending_edit_at
        if not edit or edit_at is None:  # the two are set and cleared together (datasets.dataset_update)
            raise Conflict("This dataset has no edit waiting for review.", code="no_pending_edit")
        if submitted_at is not None and submitted_at != edit_at:
            raise Conflict(
                "The owner changed this edit after you opened it; review the new version.",
                code="pending_edit_changed",
                extra={"submitted_at": edit_at.isoformat()},
            )
        if approve:
            for name in ("title", "description", "description_html", "licence"):
                setattr(locked, name, edit[name])
            locked.tags.set([Tag.objects.get_or_create(name=name)[0] for name in edit["tags"]])
        locked.pending_edit, locked.pending_edit_at = None, None
        locked.save()
        entry = ModerationLogEntry.objects.create(
            dataset=locked,
            actor=actor,
            action=ModerationLogEntry.Action.APPROVE_EDIT if approve else ModerationLogEntry.Action.REJECT_EDIT,
            from_status=locked.status,
            to_status=locked.status,
            reason=reason,
        )
        entry_id = entry.pk
        transaction.on_commit(lambda: _notify("notify_moderation_entry_task", entry_id))
    return locked


def _submit_checks(dataset: Dataset) -> None:
    if not dataset.declared_schema:
        raise Conflict("Confirm the schema before submitting for review.", code="schema_not_declared")
    if not dataset.public_row_count:
        raise Conflict(
            "Declare the public row count with the schema before submitting for review.",
            code="no_public_row_count",
        )
    if dataset.validation == Dataset.Validation.PENDING:
        raise Conflict("The whole file is still being checked; try again in a moment.", code="validation_pending")
    if dataset.validation == Dataset.Validation.INVALID:
        raise Conflict(f"The file did not pass validation: {dataset.validation_detail}", code="validation_failed")


def report_create(*, dataset: Dataset, reporter: User, reason: str) -> Report:
    """Any signed-in user reports a listed dataset; moderators are told."""
    reason = _reason_clean(reason, required=True, what="report a listing")
    if dataset.status != Dataset.Status.LISTED:
        raise Conflict("Only listed datasets can be reported.", code="not_listed")
    if dataset.owner_id == reporter.pk:
        raise InvalidInput("You cannot report your own dataset.", code="own_dataset")
    with transaction.atomic():
        if Report.objects.filter(dataset=dataset, reporter=reporter, status=Report.Status.OPEN).exists():
            raise Conflict("You already have an open report on this dataset.", code="duplicate_report")
        report = Report.objects.create(dataset=dataset, reporter=reporter, reason=reason)
        ModerationLogEntry.objects.create(
            dataset=dataset,
            actor=reporter,
            action=ModerationLogEntry.Action.REPORT,
            from_status=dataset.status,
            to_status=dataset.status,
            reason=reason,
        )
        report_id = report.pk
        transaction.on_commit(lambda: _notify("notify_report_filed_task", report_id))
    return report


def report_resolve(*, report: Report, actor: User, resolution: str, dismiss: bool = False) -> Report:
    """Staff close a report with an answer; delisting, if warranted, is a separate action."""
    if not actor.is_staff:
        raise PermissionDenied("Only moderators can resolve reports.")
    resolution = _reason_clean(resolution, required=True, what="resolve a report")
    with transaction.atomic():
        locked = Report.objects.select_for_update().get(pk=report.pk)
        if locked.status != Report.Status.OPEN:
            raise IllegalTransition(f"This report is already {locked.status}.", extra={"status": locked.status})
        locked.status = Report.Status.DISMISSED if dismiss else Report.Status.RESOLVED
        locked.resolution = resolution
        locked.resolved_by = actor
        locked.resolved_at = timezone.now()
        locked.save()
        ModerationLogEntry.objects.create(
            dataset_id=locked.dataset_id,
            actor=actor,
            action=ModerationLogEntry.Action.DISMISS_REPORT if dismiss else ModerationLogEntry.Action.RESOLVE_REPORT,
            from_status=locked.dataset.status,
            to_status=locked.dataset.status,
            reason=resolution,
        )
    return locked


def _notify(task_name: str, object_id: int) -> None:
    enqueue(f"marketplace.tasks.{task_name}", object_id, on_commit=False)
