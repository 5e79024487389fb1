"""E-mails about moderation (console backend by default)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from marketplace.models import ModerationLogEntry, Report, User

NOTIFY_ACTIONS = {"approve", "reject", "delist", "relist"}


def notify_moderation_entry(*, entry_id: int) -> bool:
    entry = ModerationLogEntry.objects.select_related("dataset__owner").filter(pk=entry_id).first()
    if entry is None or entry.action not in NOTIFY_ACTIONS or not entry.dataset.owner.email:
        return False
    dataset = entry.dataset
    send_mail(
        subject=f"Your dataset \u201c{dataset.title}\u201d was {entry.get_action_display().lower()}",
        message=(
            f"Hello {dataset.owner.get_username()},\n\n"
            f"A moderator {entry.get_action_display().lower()} \u201c{dataset.title}\u201d.\n"
            f"Reason: {entry.reason}\n\nThe full history is on the dataset's page.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[dataset.owner.email],
    )
    return True


def notify_report_filed(*, report_id: int) -> bool:
    report = Report.objects.select_related("dataset", "reporter").filter(pk=report_id).first()
    # Moderators' addresses from settings, else every active staff member with an e-mail.
    recipients = list(settings.MODERATION_NOTIFY_EMAILS) or list(
        User.objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )
    if report is None or not recipients:
        return False
    send_mail(
        subject=f"New report on \u201c{report.dataset.title}\u201d",
        message=(
            f"{report.reporter.get_username()} reported dataset #{report.dataset_id}:\n\n{report.reason}\n\n"
            "Answer it from the moderation queue.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )
    return True
