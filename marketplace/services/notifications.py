"""E-mails (console backend by default): moderation decisions and reports, and the end of compute
jobs. Each e-mail has a key and goes out at most once per key (``Notification``), so a task that
is delivered twice (``acks_late``, a worker lost after sending) does not mail twice."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from marketplace.models import Dataset, ModerationLogEntry, Notification, Report, User


class EndedJob(Protocol):
    """What the job e-mails read of a compute job (``compute_to_data.models.ComputeJob``)."""

    pk: int
    status: str
    algorithm: str
    reason: str
    budget_state: str
    epsilon_spent: Decimal | None
    buyer: User
    dataset: Dataset


# The base app writes the job e-mails but must not import the compute app above it: that app
# registers how to load a job (with its buyer and dataset owner) in its AppConfig.ready().
_job_lookup: Callable[[int], EndedJob | None] | None = None


def job_lookup_register(lookup: Callable[[int], EndedJob | None]) -> None:
    global _job_lookup
    _job_lookup = lookup


NOTIFY_ACTIONS = {"approve", "reject", "delist", "relist", "approve_edit", "reject_edit"}
# "edit approved" reads as "your edit was approved".
_EDIT_DECISIONS = {"approve_edit": "approved", "reject_edit": "rejected"}
# Job statuses the buyer hears about (a cancellation is the buyer's own doing).
JOB_NOTIFY_STATUSES = {"finished", "failed", "rejected"}


def notification_send_once(*, key: str, subject: str, message: str, recipients: list[str]) -> bool:
    """Send one e-mail unless the one with ``key`` was sent already; True if it went out now.

    The key's row stays locked while the mail is handed to the backend: a second delivery of the
    same task waits, then finds it sent. A failed send rolls the row back, so a retry sends."""
    recipients = [r for r in recipients if r]
    if not recipients:
        return False
    with transaction.atomic():
        note, _ = Notification.objects.select_for_update().get_or_create(
            key=key[:200], defaults={"subject": subject[:300], "recipients": recipients}
        )
        if note.sent_at is not None:
            return False
        send_mail(subject=subject, message=message, from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=recipients)
        note.sent_at = timezone.now()
        note.save(update_fields=["sent_at"])
    return True


def notify_moderation_entry(*, entry_id: int) -> bool:
    entry = ModerationLogEntry.objects.select_related("dataset__owner").filter(pk=entry_id).first()
    if entry is None or entry.action not in NOTIFY_ACTIONS or not entry.dataset.owner.email:
        return False
    dataset = entry.dataset
    if entry.action in _EDIT_DECISIONS:
        subject = f"Your edit of \u201c{dataset.title}\u201d was {_EDIT_DECISIONS[entry.action]}"
        said = f"A moderator {_EDIT_DECISIONS[entry.action]} your edit of \u201c{dataset.title}\u201d."
    else:
        subject = f"Your dataset \u201c{dataset.title}\u201d was {entry.get_action_display().lower()}"
        said = f"A moderator {entry.get_action_display().lower()} \u201c{dataset.title}\u201d."
    return notification_send_once(
        key=f"moderation-entry:{entry.pk}",
        subject=subject,
        message=(
            f"Hello {dataset.owner.get_username()},\n\n"
            f"{said}\n"
            f"Reason: {entry.reason}\n\nThe full history is on the dataset's page:\n"
            f"{_url('frontend:dataset', dataset.pk)}\n"
        ),
        recipients=[dataset.owner.email],
    )


def notify_report_filed(*, report_id: int) -> bool:
    report = Report.objects.select_related("dataset", "reporter").filter(pk=report_id).first()
    # Moderators' addresses from settings, else every active staff member with an e-mail.
    recipients = list(settings.MODERATION_NOTIFY_EMAILS) or list(
        User.objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )
    if report is None or not recipients:
        return False
    return notification_send_once(
        key=f"report-filed:{report.pk}",
        subject=f"New report on \u201c{report.dataset.title}\u201d",
        message=(
            f"{report.reporter.get_username()} reported dataset #{report.dataset_id}:\n\n{report.reason}\n\n"
            f"Answer it from the moderation queue: {_url('frontend:moderation')}\n"
        ),
        recipients=recipients,
    )


def notify_job_ended(*, job_id: int, status: str) -> int:
    """Tell the buyer that their job finished, failed or was rejected, and the provider (briefly)
    that a job on their dataset finished. Neither mail carries results: the buyer fetches them from
    the result page. Returns how many e-mails went out now."""
    if status not in JOB_NOTIFY_STATUSES:
        return 0
    if _job_lookup is None:
        raise ImproperlyConfigured("No compute app registered a job lookup (job_lookup_register).")
    job = _job_lookup(job_id)
    # The status is the transition's; the row may have moved on only to another terminal status.
    if job is None or job.status != status:
        return 0
    sent = 0
    if job.buyer.email:
        subject, message = _job_mail_for_buyer(job)
        sent += notification_send_once(
            key=f"job:{job.pk}:{status}:buyer", subject=subject, message=message, recipients=[job.buyer.email]
        )
    owner = job.dataset.owner
    if status == "finished" and owner.email:
        sent += notification_send_once(
            key=f"job:{job.pk}:finished:provider",
            subject=f"A compute job on \u201c{job.dataset.title}\u201d finished",
            message=(
                f"Hello {owner.get_username()},\n\n"
                f"Job #{job.pk} ({job.algorithm}) on \u201c{job.dataset.title}\u201d finished and spent "
                f"epsilon {_epsilon(job.epsilon_spent)} of your dataset's privacy budget. Its receipt goes on "
                "chain and the payment is released to you.\n\n"
                f"The job and its receipt: {_url('frontend:job', job.pk)}\n"
            ),
            recipients=[owner.email],
        )
    return sent


def _job_mail_for_buyer(job: EndedJob) -> tuple[str, str]:
    hello = f"Hello {job.buyer.get_username()},\n\n"
    what = f"Your compute job #{job.pk} ({job.algorithm}) on \u201c{job.dataset.title}\u201d"
    page = f"The job's page: {_url('frontend:job', job.pk)}\n"
    if job.status == "finished":
        return (
            f"Your compute job #{job.pk} finished",
            f"{hello}{what} finished. It spent epsilon {_epsilon(job.epsilon_spent)}.\n\n"
            f"Download the results: {_url('frontend:job-result', job.pk)}\n{page}",
        )
    if job.budget_state == "charged":
        money = (
            "The runner had already read the data, so the epsilon it reserved was charged and the payment "
            "goes to the provider with a receipt on chain."
        )
    else:
        money = "Nothing read the data: its epsilon went back to the dataset's budget and the payment is refunded."
    verb = "failed" if job.status == "failed" else "was rejected"
    return (
        f"Your compute job #{job.pk} {verb}",
        f"{hello}{what} {verb}.\nReason: {job.reason or 'not given'}\n\n{money}\n\n{page}",
    )


def _epsilon(value) -> str:
    return "n/a" if value is None else f"{value.normalize():f}"


def _url(name: str, *args: int) -> str:
    return settings.SITE_URL.rstrip("/") + reverse(name, args=args)
