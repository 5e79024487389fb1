"""A real Celery worker process (the embedded SQLite broker) picks up the tasks the services enqueue."""

import pytest

from marketplace.models import Dataset
from marketplace.services.datasets import ListingFields, dataset_create
from marketplace.services.moderation import report_create
from tests.conftest import named_file
from tests.factories import make_dataset
from tests.worker_support import real_worker, wait_for  # noqa: F401 - real_worker: a fixture

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_validates_uploads_and_sends_moderation_mail(real_worker, provider, buyer, staff, settings):
    settings.DATASET_SCHEMA_SAMPLE_BYTES = 200  # so only the worker's full pass sees the bad row
    bad = dataset_create(
        owner=provider,
        file=named_file(b"a,b\n" + b"1,2\n" * 200 + b"1,2,3\n", "bad.csv"),
        fields=ListingFields(title="Has a bad row late"),
    )
    good = make_dataset(owner=provider, title="Good one", status="listed", moderator=staff)

    def validated():
        return Dataset.objects.get(pk=bad.pk).validation != Dataset.Validation.PENDING

    wait_for(validated, log=real_worker["log"])
    bad.refresh_from_db()
    assert bad.validation == Dataset.Validation.INVALID
    assert "does not parse" in bad.validation_detail

    report_create(dataset=good, reporter=buyer, reason="Possible personal data in the description")

    def mails() -> str:
        return "".join(p.read_text() for p in real_worker["mail"].iterdir())

    wait_for(lambda: "Possible personal data in the description" in mails(), log=real_worker["log"])
    assert "To: moderators@example.org" in mails()
    assert "Subject: =?utf-8?q?Your_dataset" in mails()  # the provider heard about the approval too
