"""E-mails: moderation decisions and reports (triggered by the moderation service), and the end of
a compute job (triggered by the job's status change). Each goes out once, however often its task
is delivered."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core import mail

from compute_to_data.models import ComputeJob
from marketplace import tasks
from marketplace.models import Dataset, ModerationLogEntry, Notification
from marketplace.services import notifications
from marketplace.services.moderation import dataset_transition, report_create
from tests.factories import UserFactory, make_dataset
from tests.integrations.support import job_make, job_move

pytestmark = pytest.mark.django_db


def test_approval_and_rejection_are_mailed_once_however_often_the_task_runs(
    provider, staff, django_capture_on_commit_callbacks
):
    dataset = make_dataset(owner=provider, status=Dataset.Status.PENDING_REVIEW)
    with django_capture_on_commit_callbacks(execute=True):
        dataset_transition(dataset=dataset, actor=staff, action="reject", reason="No licence file")
    [rejected] = mail.outbox
    assert rejected.to == ["provider@example.org"]
    assert "rejected" in rejected.subject and "No licence file" in rejected.body
    assert f"/datasets/{dataset.pk}/" in rejected.body

    entry = ModerationLogEntry.objects.get(action="reject")
    # A redelivered task (acks_late, a worker lost after sending) sends nothing more.
    assert tasks.notify_moderation_entry_task.delay(entry.pk).get() is False
    assert tasks.notify_moderation_entry_task.delay(entry.pk).get() is False
    assert len(mail.outbox) == 1
    assert Notification.objects.get(key=f"moderation-entry:{entry.pk}").sent_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        dataset_transition(dataset=dataset, actor=provider, action="submit")
        dataset_transition(dataset=dataset, actor=staff, action="approve", reason="Licence added")
    assert [m.subject for m in mail.outbox][1:] == [f"Your dataset \u201c{dataset.title}\u201d was approved"]


def test_a_report_is_mailed_to_moderators_once(provider, buyer, staff, django_capture_on_commit_callbacks):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    with django_capture_on_commit_callbacks(execute=True):
        report = report_create(dataset=dataset, reporter=buyer, reason="Contains names")
    assert [m.to for m in mail.outbox] == [["moderators@example.org"]]
    assert notifications.notify_report_filed(report_id=report.pk) is False
    assert len(mail.outbox) == 1


def test_a_failed_send_is_not_recorded_so_the_retry_sends(provider, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    entry = ModerationLogEntry.objects.get(dataset=dataset, action="approve")
    mail.outbox.clear()
    with mock.patch("marketplace.services.notifications.send_mail", side_effect=OSError("SMTP down")):
        with pytest.raises(OSError):
            notifications.notify_moderation_entry(entry_id=entry.pk)
    assert not Notification.objects.filter(key=f"moderation-entry:{entry.pk}").exists()
    assert notifications.notify_moderation_entry(entry_id=entry.pk) is True
    assert len(mail.outbox) == 1


def test_the_buyer_hears_a_job_finished_and_the_provider_gets_a_short_note(
    buyer, provider, staff, django_capture_on_commit_callbacks
):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    mail.outbox.clear()
    job = job_make(buyer=buyer, dataset=dataset)
    with django_capture_on_commit_callbacks(execute=True):
        job_move(job, "paid", "queued", "provisioning", "running", "publishing")
    assert mail.outbox == [], "only the end of a job is mailed"
    with django_capture_on_commit_callbacks(execute=True):
        job_move(job, "finished", epsilon_spent=0.42, budget_state="charged")
    to_buyer, to_provider = sorted(mail.outbox, key=lambda m: m.to[0])
    assert to_buyer.to == ["buyer@example.org"] and to_buyer.subject == f"Your compute job #{job.pk} finished"
    assert "epsilon 0.42" in to_buyer.body and f"/jobs/{job.pk}/result/" in to_buyer.body
    assert to_provider.to == ["provider@example.org"] and dataset.title in to_provider.subject
    assert "epsilon 0.42" in to_provider.body and "/result/" not in to_provider.body

    # The task delivered again sends nothing.
    assert tasks.notify_job_ended_task.delay(job.pk, "finished").get() == 0
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    "path, status, budget, words",
    [
        (("paid", "queued"), "failed", "released", "refunded"),
        (("paid", "queued", "provisioning", "running"), "failed", "charged", "charged"),
        ((), "rejected", "none", "refunded"),
    ],
)
def test_a_failed_or_rejected_job_is_mailed_to_the_buyer_with_its_reason(
    buyer, provider, staff, django_capture_on_commit_callbacks, path, status, budget, words
):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    mail.outbox.clear()
    job = job_make(buyer=buyer, dataset=dataset)
    job_move(job, *path)
    with django_capture_on_commit_callbacks(execute=True):
        job_move(job, status, reason="The sandbox ran out of memory.", budget_state=budget)
    [message] = mail.outbox
    assert message.to == ["buyer@example.org"]
    assert message.subject.startswith(f"Your compute job #{job.pk} ")
    assert "The sandbox ran out of memory." in message.body and words in message.body


def test_a_cancelled_job_and_a_buyer_without_an_address_get_no_mail(
    provider, staff, django_capture_on_commit_callbacks
):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    mail.outbox.clear()
    silent = UserFactory(username="silent", email="")
    with django_capture_on_commit_callbacks(execute=True):
        job_move(job_make(buyer=silent, dataset=dataset), "paid", "cancelled")
        job_move(job_make(buyer=silent, dataset=dataset), "rejected", reason="budget")
    assert mail.outbox == []
    assert ComputeJob.objects.filter(status="cancelled").exists()
