"""The server-rendered pages, driven through Django's test client as each kind of user."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.authtoken.models import Token

from marketplace.models import Dataset, ModerationLogEntry, Report
from marketplace.services.moderation import report_create
from tests.factories import UserFactory, make_dataset

pytestmark = pytest.mark.django_db

MARKER = b"PRIVATE-MARKER-5b1e0c9d"
# The marker sits in a free-text column whose values are all distinct, so no proposal, schema,
# preview or mock may legitimately carry it.
PRIVATE_CSV = b"age,income,group,note\n" + b"".join(
    f"{20 + i},{1000 + 37 * i},{'ab'[i % 2]},{MARKER.decode() if i == 17 else f'free text {i}'}\n".encode()
    for i in range(40)
)
UPLOAD_FIELDS = {
    "title": "Cardiology visits",
    "description": "Visits to the **cardiology** ward.",
    "tags": "health, cardiology",
    "licence": "CC-BY-4.0",
    "price": "12.5",
    "price_token": "USDC",
    "epsilon_total": "8",
    "epsilon_per_job": "2",
    "delta": "0.00001",
}


def client_as(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def upload(client: Client, data: bytes = PRIVATE_CSV, name: str = "visits.csv", **overrides):
    fields = {**UPLOAD_FIELDS, **overrides}
    return client.post(reverse("frontend:dataset-new"), {**fields, "file": SimpleUploadedFile(name, data)})


def schema_post_data(dataset: Dataset, **changes) -> dict[str, str]:
    """The schema form as the page would submit it, from the proposed schema; ``changes`` maps
    column name to overridden fields."""
    columns = (dataset.declared_schema or dataset.proposed_schema)["columns"]
    data = {
        "col-TOTAL_FORMS": str(len(columns)),
        "col-INITIAL_FORMS": str(len(columns)),
        "col-MIN_NUM_FORMS": "0",
        "col-MAX_NUM_FORMS": "500",
        "public_row_count": str(dataset.public_row_count or dataset.row_count or 40),
    }
    for i, col in enumerate(columns):
        row = {
            "type": col["type"],
            "min": "" if col.get("min") is None else str(col["min"]),
            "max": "" if col.get("max") is None else str(col["max"]),
            "categories": ", ".join(col.get("categories") or []),
            "max_length": str(col.get("max_length") or ""),
            "description": col.get("description", ""),
        }
        if col.get("nullable"):
            row["nullable"] = "on"
        row.update(changes.get(col["name"], {}))
        data.update({f"col-{i}-{key}": value for key, value in row.items() if value is not None})
    return data


# --- catalogue -----------------------------------------------------------------------------


def test_catalogue_lists_only_listed_datasets_with_their_terms(provider, staff):
    make_dataset(
        owner=provider,
        title="Listed blood tests",
        status=Dataset.Status.LISTED,
        moderator=staff,
        price="7.5",
        tags=("health", "blood"),
    )
    make_dataset(owner=provider, title="Draft secrets", status=Dataset.Status.DRAFT)
    response = Client().get("/")
    assert response.status_code == 200
    body = text(response)
    assert "Listed blood tests" in body and "Draft secrets" not in body
    assert "7.5 USDC" in body and "by provider" in body
    assert "ε 10 total · 1 per job" in body
    assert 'href="/?tags=blood"' in body and "CC-BY-4.0" in body


def test_catalogue_search_tags_licence_and_price_filters(provider, staff):
    make_dataset(owner=provider, title="Heart rates", tags=("health",), price="3", status="listed", moderator=staff)
    make_dataset(
        owner=provider,
        title="Taxi rides",
        tags=("mobility",),
        price="30",
        licence="ODbL-1.0",
        status="listed",
        moderator=staff,
    )
    client = Client()
    assert "Taxi rides" not in text(client.get("/", {"q": "heart"}))
    assert "Heart rates" in text(client.get("/", {"q": "heart"}))
    body = text(client.get("/", {"tags": "mobility"}))
    assert "Taxi rides" in body and "Heart rates" not in body
    body = text(client.get("/", {"licence": "ODbL-1.0"}))
    assert "Taxi rides" in body and "Heart rates" not in body
    body = text(client.get("/", {"price_min": "10", "sort": "-price"}))
    assert "Taxi rides" in body and "Heart rates" not in body
    body = text(client.get("/", {"price_max": "10", "sort": "price"}))
    assert "Heart rates" in body and "Taxi rides" not in body


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"price_min": "abc"}, "Min price: Enter a number."),
        ({"price_min": "9", "price_max": "2"}, "The minimum price must not be above the maximum price."),
        ({"sort": "cheapest"}, "Select a valid choice."),
        ({"licence": "WTFPL"}, "Select a valid choice."),
        ({"price_max": "-1"}, "greater than or equal to 0"),
    ],
)
def test_catalogue_bad_filter_input_shows_a_message_not_a_500(params, message):
    response = Client().get("/", params)
    assert response.status_code == 400
    assert "Please check the filters." in text(response)
    assert message in text(response)


def test_catalogue_paginates_by_20_and_keeps_filters_in_links(provider, staff):
    for i in range(21):
        make_dataset(owner=provider, title=f"Series {i:02d}", tags=("series",), status="listed", moderator=staff)
    client = Client()
    first = text(client.get("/", {"tags": "series", "sort": "newest"}))
    assert first.count('class="card"') == 20
    assert "Page 1 of 2" in first
    next_link = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "tags=series" in next_link and "sort=newest" in next_link and "page=2" in next_link
    second = text(client.get(next_link))
    assert second.count('class="card"') == 1 and "Series 00" in second
    assert text(client.get("/", {"page": "99"})).count('class="card"') == 1  # out of range: last page
    assert client.get("/", {"page": "nonsense"}).status_code == 200


# --- accounts ------------------------------------------------------------------------------


def test_signup_logs_in_and_profile_shows_organisation():
    client = Client()
    assert client.get(reverse("frontend:signup")).status_code == 200
    response = client.post(
        reverse("frontend:signup"),
        {
            "username": "newprovider",
            "email": "new@example.org",
            "organisation": "St Elsewhere Hospital",
            "password1": "a sturdy passphrase 42",
            "password2": "a sturdy passphrase 42",
        },
    )
    assert response.status_code == 302
    profile = text(client.get(reverse("frontend:profile")))
    assert "St Elsewhere Hospital" in profile and "newprovider" in profile


def test_signup_rejects_mismatched_passwords():
    response = Client().post(
        reverse("frontend:signup"),
        {
            "username": "x",
            "email": "x@example.org",
            "password1": "a sturdy passphrase 42",
            "password2": "other 42",
        },
    )
    assert response.status_code == 400
    assert "password fields didn’t match" in text(response)


def test_login_and_logout_through_the_forms(provider):
    client = Client()
    response = client.post(
        reverse("frontend:login"), {"username": "provider", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert "Log out" in text(client.get("/"))
    assert client.get(reverse("frontend:logout")).status_code == 405  # logging out is a POST
    client.post(reverse("frontend:logout"))
    assert "Log in" in text(client.get("/"))
    bad = client.post(reverse("frontend:login"), {"username": "provider", "password": "wrong"})
    assert bad.status_code == 200 and "Please enter a correct username and password" in text(bad)


def test_profile_edit_and_api_token_regeneration(provider):
    client = client_as(provider)
    response = client.post(
        reverse("frontend:profile"), {"email": "p@example.org", "organisation": "Acme Health", "bio": "Hi"}
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.organisation == "Acme Health"
    assert "You have no API token yet." in text(client.get(reverse("frontend:profile")))
    client.post(reverse("frontend:token-regenerate"))
    first = Token.objects.get(user=provider).key
    assert first in text(client.get(reverse("frontend:profile")))
    client.post(reverse("frontend:token-regenerate"))
    second = Token.objects.get(user=provider).key
    assert second != first and second in text(client.get(reverse("frontend:profile")))


# --- who sees which page -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "buyer", "provider", "staff"])
def test_pages_render_for_the_right_users(who, provider, buyer, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    user = {"anonymous": None, "buyer": buyer, "provider": provider, "staff": staff}[who]
    client = client_as(user)
    owner_pages = ["dataset-schema", "dataset-edit", "dataset-mock", "dataset-delete"]
    expected = {
        "/": 200,
        reverse("frontend:dataset", args=[dataset.pk]): 200,
        reverse("frontend:signup"): 200 if user is None else 302,
        reverse("frontend:login"): 200 if user is None else 302,
        reverse("frontend:dataset-new"): 302 if user is None else 200,
        reverse("frontend:my-datasets"): 302 if user is None else 200,
        reverse("frontend:profile"): 302 if user is None else 200,
        reverse("frontend:moderation-log"): 302 if user is None else 200,
        reverse("frontend:moderation"): {"anonymous": 302, "staff": 200}.get(who, 403),
        **{
            reverse(f"frontend:{name}", args=[dataset.pk]): {"anonymous": 302, "provider": 200}.get(who, 403)
            for name in owner_pages
        },
    }
    for url, status in expected.items():
        response = client.get(url)
        assert response.status_code == status, (who, url, response.status_code)
        if status == 302 and user is None and url not in ("/signup/", "/login/"):
            assert response["Location"].startswith("/login/?next=")


def test_moderation_pages_refuse_non_staff_with_a_page(buyer):
    response = client_as(buyer).get(reverse("frontend:moderation"))
    assert response.status_code == 403
    assert "Only moderators can see this page." in text(response)
    assert "Moderation</a>" not in text(client_as(buyer).get("/"))  # no nav link either


def test_nav_shows_moderation_to_staff_only(staff, buyer):
    assert 'href="/moderation/"' in text(client_as(staff).get("/"))
    assert 'href="/moderation/"' not in text(client_as(buyer).get("/"))


@pytest.mark.parametrize("status", ["draft", "pending_review", "rejected", "delisted"])
def test_hidden_datasets_are_404_for_strangers(status, provider, buyer, staff):
    dataset = make_dataset(owner=provider, title="Hidden one", status=status, moderator=staff)
    url = reverse("frontend:dataset", args=[dataset.pk])
    for user in (None, buyer):
        response = client_as(user).get(url)
        assert response.status_code == 404
        assert "Hidden one" not in text(response) and "No such dataset." in text(response)
    assert client_as(user).get(f"/api/v1/datasets/{dataset.pk}/mock/").status_code == 404
    for user in (provider, staff):
        assert "Hidden one" in text(client_as(user).get(url))


def test_server_error_is_a_page_and_json_under_api():
    from frontend.views.errors import server_error

    page = server_error(RequestFactory().get("/datasets/1/"))
    assert page.status_code == 500 and "Something went wrong on our side." in page.content.decode()
    api = server_error(RequestFactory().get("/api/v1/datasets/"))
    assert api.status_code == 500 and json.loads(api.content)["code"] == "server_error"


def test_not_found_is_a_page_and_json_under_api():
    page = Client().get("/no/such/page/")
    assert page.status_code == 404 and "<h1>Not found</h1>" in text(page)
    api = Client().get("/api/v1/no-such-endpoint/")
    assert api.status_code == 404 and api.json()["code"] == "not_found"


# --- dataset page --------------------------------------------------------------------------


def test_description_markdown_is_rendered_and_sanitised(provider, staff):
    dataset = make_dataset(
        owner=provider,
        status="listed",
        moderator=staff,
        description="# Heading\n\n**bold** <script>alert('x')</script> "
        "<img src=x onerror=alert(1)> [link](javascript:alert(1))",
    )
    body = text(Client().get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "<strong>bold</strong>" in body and "<h1>Heading</h1>" in body
    assert "<script>alert" not in body and "onerror" not in body and "javascript:" not in body


def test_dataset_page_shows_terms_schema_and_mock_preview(provider, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff, price="4")
    body = text(Client().get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "ε = 10" in body and "ε = 1" in body and "δ = 0.00001" in body
    assert "<code>age</code>" in body and "integer" in body
    assert f'href="/api/v1/datasets/{dataset.pk}/mock/"' in body and "Download mock CSV" in body
    preview = re.search(r"<caption[^>]*>Mock data, first (\d+) rows</caption>", body)
    assert preview and preview.group(1) == "10"
    # strangers see neither owner controls nor the private row count
    assert "Submit for review" not in body and "visible only to you" not in body


def test_owner_sees_status_validation_controls_and_history(provider, staff):
    dataset = make_dataset(owner=provider, status="rejected", moderator=staff)
    body = text(client_as(provider).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "badge-rejected" in body and "Valid" in body and "30 rows (visible only to you)" in body
    for label in ("Edit listing", "Edit schema", "Mock file", "Submit for review", "Delete"):
        assert label in body
    assert "reject in test" in body and "Moderation history" in body
    assert 'http-equiv="refresh"' not in body


def test_owner_page_refreshes_while_validation_is_pending(provider):
    dataset = make_dataset(owner=provider)
    Dataset.objects.filter(pk=dataset.pk).update(validation=Dataset.Validation.PENDING, validation_progress=40)
    body = text(client_as(provider).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert '<meta http-equiv="refresh" content="2">' in body
    assert '<progress max="100" value="40"' in body


def test_staff_see_moderation_forms_with_required_reason(provider, staff):
    dataset = make_dataset(owner=provider, status="pending_review")
    body = text(client_as(staff).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert 'name="action" value="approve"' in body and 'name="action" value="reject"' in body
    assert 'name="action" value="delist"' not in body
    assert re.search(r'<textarea id="reason-approve" name="reason"[^>]*required', body)


# --- publishing ----------------------------------------------------------------------------


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


# --- review and moderation -----------------------------------------------------------------


def test_submit_then_approve_through_the_pages(provider, staff):
    dataset = make_dataset(owner=provider)
    transition = reverse("frontend:dataset-transition", args=[dataset.pk])
    owner = client_as(provider)
    response = owner.post(transition, {"action": "submit"}, follow=True)
    assert "Submitted for review" in text(response)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.PENDING_REVIEW

    moderator = client_as(staff)
    queue = text(moderator.get(reverse("frontend:moderation")))
    assert "Clinical measurements" in queue and 'value="approve"' in queue
    response = moderator.post(transition, {"action": "approve", "reason": "", "next": "/moderation/"}, follow=True)
    assert "A reason is required to approve." in text(response)
    response = moderator.post(transition, {"action": "approve", "reason": "Looks good", "next": "/moderation/"})
    assert response["Location"] == "/moderation/"
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.LISTED
    entry = ModerationLogEntry.objects.get(action="approve")
    assert entry.actor == staff and entry.reason == "Looks good"
    assert "Looks good" in text(owner.get(reverse("frontend:dataset", args=[dataset.pk])))


def test_non_staff_cannot_approve(provider, buyer):
    dataset = make_dataset(owner=provider, status="pending_review")
    response = client_as(provider).post(
        reverse("frontend:dataset-transition", args=[dataset.pk]), {"action": "approve", "reason": "mine"}, follow=True
    )
    assert "Only moderators can do that." in text(response)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.PENDING_REVIEW


def test_transition_ignores_offsite_next(provider, staff):
    dataset = make_dataset(owner=provider, status="pending_review")
    response = client_as(staff).post(
        reverse("frontend:dataset-transition", args=[dataset.pk]),
        {"action": "approve", "reason": "ok", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("frontend:dataset", args=[dataset.pk])


def test_moderation_queue_filters(provider, staff):
    make_dataset(owner=provider, title="Waiting one", status="pending_review")
    listed = make_dataset(owner=provider, title="Live one", status="listed", moderator=staff)
    client = client_as(staff)
    body = text(client.get(reverse("frontend:moderation")))
    assert "Waiting one" in body and "Live one" not in body
    body = text(client.get(reverse("frontend:moderation"), {"status": "listed"}))
    assert "Live one" in body and "Waiting one" not in body and 'value="delist"' in body
    body = text(client.get(reverse("frontend:moderation"), {"status": "all", "q": "waiting"}))
    assert "Waiting one" in body and "Live one" not in body
    report_create(dataset=listed, reporter=UserFactory(username="whistle"), reason="Contains names")
    body = text(client.get(reverse("frontend:moderation"), {"status": "all", "reported": "on"}))
    assert "Live one" in body and "Waiting one" not in body and "1 open report" in body
    bad = client.get(reverse("frontend:moderation"), {"status": "bogus"})
    assert bad.status_code == 400 and "Unknown filter" in text(bad)


def test_report_then_resolve(provider, buyer, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    page = text(client_as(buyer).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Report this listing" in page
    assert "Report this listing" not in text(client_as(provider).get(reverse("frontend:dataset", args=[dataset.pk])))
    reporter = client_as(buyer)
    response = reporter.post(
        reverse("frontend:dataset-report", args=[dataset.pk]), {"reason": "It has real names"}, follow=True
    )
    assert "The moderators have your report." in text(response)
    again = reporter.post(reverse("frontend:dataset-report", args=[dataset.pk]), {"reason": "again"}, follow=True)
    assert "You already have an open report" in text(again)
    report = Report.objects.get()
    moderator = client_as(staff)
    assert "It has real names" in text(moderator.get(reverse("frontend:moderation")))
    resolve = reverse("frontend:report-resolve", args=[report.pk])
    assert "A reason is required" in text(
        moderator.post(resolve, {"decision": "resolve", "resolution": ""}, follow=True)
    )
    moderator.post(resolve, {"decision": "dismiss", "resolution": "Names are synthetic"})
    report.refresh_from_db()
    assert report.status == Report.Status.DISMISSED and report.resolution == "Names are synthetic"
    assert client_as(buyer).post(resolve, {"decision": "resolve", "resolution": "x"}).status_code == 403


def test_audit_log_staff_see_all_providers_their_own(provider, buyer, staff):
    make_dataset(owner=provider, title="Provider's", status="listed", moderator=staff)
    make_dataset(owner=buyer, title="Buyer's", status="rejected", moderator=staff)
    staff_log = text(client_as(staff).get(reverse("frontend:moderation-log")))
    assert "Provider&#x27;s" in staff_log and "Buyer&#x27;s" in staff_log and "approve in test" in staff_log
    own_log = text(client_as(provider).get(reverse("frontend:moderation-log")))
    assert "Provider&#x27;s" in own_log and "Buyer&#x27;s" not in own_log


def test_providers_are_not_told_who_reported_them(provider, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    report_create(dataset=dataset, reporter=UserFactory(username="whistleblower"), reason="Looks like real names")
    for url in (reverse("frontend:moderation-log"), reverse("frontend:dataset", args=[dataset.pk])):
        body = text(client_as(provider).get(url))
        assert "Looks like real names" in body and "whistleblower" not in body
    assert "whistleblower" in text(client_as(staff).get(reverse("frontend:moderation-log")))


# --- the private file never leaves -----------------------------------------------------------


def test_private_file_bytes_never_appear_in_any_page(provider, buyer, staff, django_capture_on_commit_callbacks):
    owner = client_as(provider)
    with django_capture_on_commit_callbacks(execute=True):
        upload(owner)
    dataset = Dataset.objects.get()
    owner.post(reverse("frontend:dataset-schema", args=[dataset.pk]), schema_post_data(dataset))
    owner.post(reverse("frontend:dataset-transition", args=[dataset.pk]), {"action": "submit"})
    client_as(staff).post(
        reverse("frontend:dataset-transition", args=[dataset.pk]), {"action": "approve", "reason": "fine"}
    )
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.LISTED

    pk = dataset.pk
    urls = [
        "/",
        "/?q=cardiology",
        "/me/",
        "/me/datasets/",
        "/moderation/",
        "/moderation/?status=all",
        "/moderation/log/",
        "/datasets/new/",
        f"/datasets/{pk}/",
        f"/datasets/{pk}/schema/",
        f"/datasets/{pk}/edit/",
        f"/datasets/{pk}/mock/",
        f"/datasets/{pk}/delete/",
        f"/api/v1/datasets/{pk}/",
        f"/api/v1/datasets/{pk}/schema/",
        f"/api/v1/datasets/{pk}/mock/",
        f"/api/v1/datasets/{pk}/mock/?source=synthetic&rows=10000",
        "/api/v1/datasets/",
        "/api/v1/datasets/mine/",
        "/api/v1/moderation/queue/?status=all",
        f"/datasets/{pk}/file/",
        f"/datasets/{pk}/download/",
        f"/api/v1/datasets/{pk}/file/",
        f"/media/{dataset.storage_name}",
        f"/static/{dataset.storage_name}",
        f"/{dataset.storage_name}",
    ]
    checked = 0
    for user in (None, buyer, provider, staff):
        client = client_as(user)
        for url in urls:
            response = client.get(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert MARKER not in body, (user, url)
            checked += response.status_code == 200
    assert checked > 40
    # searching for a private value finds nothing: the index holds listing text only
    assert "0 datasets match" in text(Client().get("/", {"q": MARKER.decode()}))
    mock = client_as(buyer).get(f"/api/v1/datasets/{pk}/mock/")
    assert mock.status_code == 200 and mock.content.startswith(b"age,income,group,note\n")
