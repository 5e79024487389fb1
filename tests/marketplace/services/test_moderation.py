import pytest
from django.core import mail

from common.errors import Conflict, IllegalTransition, InvalidInput, PermissionDenied
from marketplace.models import Dataset, ModerationLogEntry, Report
from marketplace.services.moderation import dataset_transition, report_create, report_resolve
from tests.factories import make_dataset

pytestmark = pytest.mark.django_db


def test_full_pipeline_is_logged_with_actor_and_reason(provider, staff, django_capture_on_commit_callbacks):
    dataset = make_dataset(owner=provider)
    with django_capture_on_commit_callbacks(execute=True):
        dataset = dataset_transition(dataset=dataset, actor=provider, action="submit")
        dataset = dataset_transition(dataset=dataset, actor=staff, action="approve", reason="Looks good")
        dataset = dataset_transition(dataset=dataset, actor=staff, action="delist", reason="Licence dispute")
        dataset = dataset_transition(dataset=dataset, actor=staff, action="relist", reason="Dispute settled")
    assert dataset.status == Dataset.Status.LISTED and dataset.listed_at is not None
    log = list(
        ModerationLogEntry.objects.order_by("id").values_list(
            "actor__username", "action", "from_status", "to_status", "reason"
        )
    )
    assert log == [
        ("provider", "submit", "draft", "pending_review", ""),
        ("moderator", "approve", "pending_review", "listed", "Looks good"),
        ("moderator", "delist", "listed", "delisted", "Licence dispute"),
        ("moderator", "relist", "delisted", "listed", "Dispute settled"),
    ]
    # the provider hears about each decision by e-mail, with the reason
    assert [m.to for m in mail.outbox] == [["provider@example.org"]] * 3
    assert "Licence dispute" in mail.outbox[1].body


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("draft", "approve"),
        ("draft", "delist"),
        ("listed", "submit"),
        ("listed", "approve"),
        ("pending_review", "delist"),
        ("rejected", "approve"),
        ("delisted", "reject"),
    ],
)
def test_illegal_transitions_are_refused(provider, staff, status, action):
    dataset = make_dataset(owner=provider, status=status, moderator=staff)
    actor = provider if action == "submit" else staff
    with pytest.raises(IllegalTransition) as excinfo:
        dataset_transition(dataset=dataset, actor=actor, action=action, reason="because")
    assert excinfo.value.status == 409
    assert Dataset.objects.get(pk=dataset.pk).status == status


def test_rejected_dataset_can_be_resubmitted(provider, staff):
    dataset = make_dataset(owner=provider, status="rejected", moderator=staff)
    assert dataset_transition(dataset=dataset, actor=provider, action="submit").status == "pending_review"


def test_staff_actions_need_staff_and_a_reason(provider, buyer, staff):
    dataset = make_dataset(owner=provider, status="pending_review")
    with pytest.raises(PermissionDenied):
        dataset_transition(dataset=dataset, actor=provider, action="approve", reason="I like it")
    with pytest.raises(InvalidInput, match="reason is required"):
        dataset_transition(dataset=dataset, actor=staff, action="reject", reason="   ")
    with pytest.raises(PermissionDenied):
        dataset_transition(dataset=dataset, actor=buyer, action="submit")


def test_submit_needs_a_declared_schema_and_a_valid_file(provider):
    undeclared = make_dataset(owner=provider, declare=False)
    with pytest.raises(Conflict, match="Confirm the schema"):
        dataset_transition(dataset=undeclared, actor=provider, action="submit")
    broken = make_dataset(owner=provider, title="Broken")
    Dataset.objects.filter(pk=broken.pk).update(validation="invalid", validation_detail="row 9 has 3 fields")
    broken.refresh_from_db()
    with pytest.raises(Conflict, match="row 9 has 3 fields"):
        dataset_transition(dataset=broken, actor=provider, action="submit")


def test_reports_notify_moderators_and_are_answered(provider, buyer, staff, django_capture_on_commit_callbacks):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    with django_capture_on_commit_callbacks(execute=True):
        report = report_create(dataset=dataset, reporter=buyer, reason="Contains names in the description")
    assert mail.outbox[-1].to == ["moderators@example.org"]
    assert "Contains names" in mail.outbox[-1].body
    with pytest.raises(Conflict, match="already have an open report"):
        report_create(dataset=dataset, reporter=buyer, reason="again")
    with pytest.raises(InvalidInput, match="own dataset"):
        report_create(dataset=dataset, reporter=provider, reason="self")
    with pytest.raises(PermissionDenied):
        report_resolve(report=report, actor=buyer, resolution="fine")
    resolved = report_resolve(report=report, actor=staff, resolution="Description fixed by provider")
    assert (resolved.status, resolved.resolved_by) == (Report.Status.RESOLVED, staff)
    with pytest.raises(IllegalTransition):
        report_resolve(report=report, actor=staff, resolution="twice")
    actions = list(ModerationLogEntry.objects.filter(dataset=dataset).values_list("action", flat=True))
    assert "report" in actions and "resolve_report" in actions


def test_unlisted_datasets_cannot_be_reported(provider, buyer):
    dataset = make_dataset(owner=provider, status="pending_review")
    with pytest.raises(Conflict, match="Only listed"):
        report_create(dataset=dataset, reporter=buyer, reason="spam")


def test_report_mail_goes_to_staff_when_no_list_is_configured(
    provider, buyer, staff, settings, django_capture_on_commit_callbacks
):
    settings.MODERATION_NOTIFY_EMAILS = []
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    with django_capture_on_commit_callbacks(execute=True):
        report_create(dataset=dataset, reporter=buyer, reason="Looks like scraped data")
    assert mail.outbox[-1].to == ["mod@example.org"]
