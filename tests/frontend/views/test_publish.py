"""Publishing (``frontend/views/publish.py``): upload, schema, edits, mock, deletion and my datasets,
through Django's test client."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from marketplace.models import Dataset
from tests.factories import make_dataset
from tests.frontend.support import PRIVATE_CSV, UPLOAD_FIELDS, client_as, schema_post_data, text, upload

pytestmark = pytest.mark.django_db


def test_upload_form_creates_a_draft_and_redirects_to_the_schema_page(provider, django_capture_on_commit_callbacks):
    client = client_as(provider)
    with django_capture_on_commit_callbacks(execute=True):  # full-file validation is enqueued on commit
        response = upload(client)
    dataset = Dataset.objects.get(title="Cardiology visits")
    assert response.status_code == 302
    assert response["Location"] == reverse("frontend:dataset-schema", args=[dataset.pk])
    assert dataset.owner == provider and dataset.status == Dataset.Status.DRAFT
    assert sorted(t.name for t in dataset.tags.all()) == ["cardiology", "health"]
    assert str(dataset.price.normalize()) == "12.5" and dataset.validation == Dataset.Validation.VALID
    page = text(client.get(response["Location"]))
    assert "Confirm the schema" in page and "<code>note</code>" in page
    assert "The declared schema is public." in page


def test_upload_by_xhr_answers_with_the_redirect(provider):
    response = client_as(provider).post(
        reverse("frontend:dataset-new"),
        {**UPLOAD_FIELDS, "file": SimpleUploadedFile("v.csv", PRIVATE_CSV)},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    dataset = Dataset.objects.get()
    assert response.status_code == 200
    assert response.json() == {"redirect": reverse("frontend:dataset-schema", args=[dataset.pk])}


@pytest.mark.parametrize(
    ("data", "name", "message", "status"),
    [
        (b"a,b\n1,2,3\n", "bad.csv", "The CSV file is malformed", 400),
        (b"", "empty.csv", "The submitted file is empty.", 400),
        (b"a,b\n1,2\n", "data.xlsx", "Unsupported file type", 400),
        (b"PAR1 not really", "data.parquet", "This is not a Parquet file", 400),
    ],
)
def test_upload_errors_rerender_the_form_with_the_message(provider, data, name, message, status):
    response = upload(client_as(provider), data=data, name=name)
    assert response.status_code == status
    assert message in text(response)
    assert 'enctype="multipart/form-data"' in text(response)
    assert 'value="Cardiology visits"' in text(response)  # what was typed is kept
    assert not Dataset.objects.exists()


def test_upload_with_a_bad_budget_shows_the_service_message(provider):
    response = upload(client_as(provider), epsilon_per_job="50")
    assert response.status_code == 400
    assert "The epsilon per job must be above 0 and at most the total epsilon." in text(response)


def test_upload_too_large_rerenders_the_form_with_413(provider, settings):
    settings.DATASET_MAX_UPLOAD_BYTES = 200
    response = upload(client_as(provider))
    assert response.status_code == 413
    assert "The file is larger than the limit of 200 bytes" in text(response)
    assert 'enctype="multipart/form-data"' in text(response)
    assert not Dataset.objects.exists()


def test_upload_view_still_checks_csrf(provider):
    client = Client(enforce_csrf_checks=True)
    client.force_login(provider)
    response = client.post(
        reverse("frontend:dataset-new"), {**UPLOAD_FIELDS, "file": SimpleUploadedFile("v.csv", PRIVATE_CSV)}
    )
    assert response.status_code == 403
    assert not Dataset.objects.exists()


def test_upload_requires_login():
    response = Client().post(
        reverse("frontend:dataset-new"), {**UPLOAD_FIELDS, "file": SimpleUploadedFile("v.csv", PRIVATE_CSV)}
    )
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not Dataset.objects.exists()


def test_schema_form_is_prefilled_and_confirms_the_schema(provider):
    client = client_as(provider)
    upload(client)
    dataset = Dataset.objects.get()
    url = reverse("frontend:dataset-schema", args=[dataset.pk])
    page = text(client.get(url))
    assert 'name="col-0-min" value="20"' in page or 'name="col-0-min" value="0"' in page
    data = schema_post_data(
        dataset, age={"min": "0", "max": "120", "description": "Age in years"}, group={"categories": "a, b, c"}
    )
    response = client.post(url, data)
    assert response.status_code == 302 and response["Location"] == reverse("frontend:dataset", args=[dataset.pk])
    dataset.refresh_from_db()
    columns = {c["name"]: c for c in dataset.declared_schema["columns"]}
    assert columns["age"] == {**columns["age"], "type": "integer", "min": 0, "max": 120, "description": "Age in years"}
    assert columns["group"]["categories"] == ["a", "b", "c"]
    assert columns["note"]["type"] == "text"
    # later visits are prefilled from the declared schema
    assert 'value="Age in years"' in text(client.get(url))


def test_schema_form_rejects_min_greater_than_max(provider):
    client = client_as(provider)
    upload(client)
    dataset = Dataset.objects.get()
    response = client.post(
        reverse("frontend:dataset-schema", args=[dataset.pk]), schema_post_data(dataset, age={"min": "90", "max": "10"})
    )
    assert response.status_code == 400
    assert "min (90) must not be greater than max (10)" in text(response)
    dataset.refresh_from_db()
    assert dataset.declared_schema is None


def test_schema_form_reports_unparseable_bounds(provider):
    client = client_as(provider)
    upload(client)
    dataset = Dataset.objects.get()
    response = client.post(
        reverse("frontend:dataset-schema", args=[dataset.pk]), schema_post_data(dataset, income={"min": "lots"})
    )
    assert response.status_code == 400 and "Column &#x27;income&#x27; min must be a number." in text(response)


def test_schema_is_locked_once_submitted(provider):
    dataset = make_dataset(owner=provider, status="pending_review")
    client = client_as(provider)
    url = reverse("frontend:dataset-schema", args=[dataset.pk])
    assert "The schema is locked" in text(client.get(url))
    response = client.post(url, schema_post_data(dataset))
    assert response.status_code == 409 and "can change only while the dataset is a draft" in text(response)


def test_edit_listing(provider):
    dataset = make_dataset(owner=provider)
    client = client_as(provider)
    url = reverse("frontend:dataset-edit", args=[dataset.pk])
    assert 'value="Clinical measurements"' in text(client.get(url))
    response = client.post(url, {**UPLOAD_FIELDS, "title": "Renamed", "tags": "a, b"})
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert dataset.title == "Renamed" and sorted(t.name for t in dataset.tags.all()) == ["a", "b"]
    bad = client.post(url, {**UPLOAD_FIELDS, "tags": "not ok!"})
    assert bad.status_code == 400 and "may use only letters, digits and dashes" in text(bad)


def test_mock_upload_and_remove(provider):
    dataset = make_dataset(owner=provider)
    client = client_as(provider)
    url = reverse("frontend:dataset-mock", args=[dataset.pk])
    wrong = client.post(url, {"file": SimpleUploadedFile("m.csv", b"x,y\n1,2\n")})
    assert wrong.status_code == 400 and "columns must be the declared columns" in text(wrong)
    ok = client.post(url, {"file": SimpleUploadedFile("m.csv", b"age,income,group\n1,2,a\n3,4,b\n")})
    assert ok.status_code == 302
    page = text(client.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "First rows of the provider’s mock file." in page and "<td>3</td>" in page
    client.post(reverse("frontend:dataset-mock-remove", args=[dataset.pk]))
    dataset.refresh_from_db()
    assert dataset.mock_storage_name == ""


def test_delete_asks_then_deletes(provider):
    dataset = make_dataset(owner=provider)
    client = client_as(provider)
    url = reverse("frontend:dataset-delete", args=[dataset.pk])
    assert "cannot be undone" in text(client.get(url))
    assert client.post(url)["Location"] == reverse("frontend:my-datasets")
    assert not Dataset.objects.exists()


def test_listed_dataset_cannot_be_deleted(provider, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    response = client_as(provider).post(reverse("frontend:dataset-delete", args=[dataset.pk]))
    assert response.status_code == 409 and "ask a moderator to delist it" in text(response)


def test_others_cannot_use_owner_forms(provider, buyer, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    for user in (buyer, staff):
        response = client_as(user).post(reverse("frontend:dataset-edit", args=[dataset.pk]), UPLOAD_FIELDS)
        assert response.status_code == 403
    dataset.refresh_from_db()
    assert dataset.title == "Clinical measurements"


def test_my_datasets_lists_every_state(provider, staff, buyer):
    make_dataset(owner=provider, title="Mine draft")
    make_dataset(owner=provider, title="Mine listed", status="listed", moderator=staff)
    make_dataset(owner=buyer, title="Not mine")
    body = text(client_as(provider).get(reverse("frontend:my-datasets")))
    assert "Mine draft" in body and "Mine listed" in body and "Not mine" not in body
    assert "badge-draft" in body and "badge-listed" in body
