import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from marketplace.models import Dataset, ModerationLogEntry
from tests.conftest import client_for
from tests.factories import DEFAULT_CSV, UserFactory, declarable_schema, make_dataset

pytestmark = pytest.mark.django_db

SECRET = b"ZZ-PRIVATE-ROW-MARKER-7731"
PRIVATE_CSV = (
    b"age,income,group\n"
    + b"".join(f"{20 + i},{1000 + i},a\n".encode() for i in range(40))
    + b"33,4242,"
    + SECRET
    + b"\n"
)


def upload(client, data=PRIVATE_CSV, name="private.csv", **fields):
    payload = {
        "title": "Clinical trial",
        "description": "**bold** <script>alert(1)</script>",
        "tags": "health,trial",
        "licence": "CC-BY-4.0",
        "price": "12.5",
        "epsilon_total": "6",
        "epsilon_per_job": "1.5",
        "delta": "1e-6",
        **fields,
    }
    payload["file"] = SimpleUploadedFile(name, data, content_type="text/csv")
    return client.post("/api/v1/datasets/", payload, format="multipart")


def test_token_auth_then_upload_returns_draft_with_proposal(provider, api):
    response = api.post("/api/v1/auth/token/", {"username": "provider", "password": "correct horse battery staple"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=provider).key == token
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = upload(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft"
    assert body["tags"] == ["health", "trial"]
    assert body["price"] == "12.500000" and body["price_token"] == "USDC"
    assert body["epsilon_per_job"] == "1.5000" and body["delta"] == 1e-6
    assert [c["name"] for c in body["proposed_schema"]["columns"]] == ["age", "income", "group"]
    assert "<script>" not in body["description_html"] and "<strong>bold</strong>" in body["description_html"]
    assert "storage_name" not in body


def test_wrong_password_gives_a_json_error(provider, api):
    response = api.post("/api/v1/auth/token/", {"username": "provider", "password": "nope"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_credentials"


def test_anonymous_writes_get_401(provider, staff, api):
    dataset = make_dataset(owner=provider, status="pending_review")
    assert upload(api).status_code == 401
    for path, method in [
        (f"/api/v1/datasets/{dataset.pk}/", "patch"),
        (f"/api/v1/datasets/{dataset.pk}/submit/", "post"),
        (f"/api/v1/datasets/{dataset.pk}/approve/", "post"),
        (f"/api/v1/datasets/{dataset.pk}/reports/", "post"),
        ("/api/v1/moderation/queue/", "get"),
    ]:
        response = getattr(api, method)(path, {"reason": "x"}, format="json")
        assert response.status_code in (401, 404), path  # hidden dataset: not even its existence leaks
        assert "code" in response.json() and "detail" in response.json()
    assert api.post("/api/v1/datasets/", {}, format="multipart").json()["code"] == "not_authenticated"


def test_non_owner_edit_is_403_and_unknown_id_is_404(provider, buyer, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    response = client_for(buyer).patch(f"/api/v1/datasets/{dataset.pk}/", {"title": "Mine now"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "detail": "Only the dataset's owner can change it."}
    assert client_for(buyer).get("/api/v1/datasets/999999/").json()["code"] == "not_found"
    assert client_for(buyer).get("/api/v1/datasets/999999/").status_code == 404
    assert client_for(buyer).get("/api/v1/no-such-endpoint/").status_code == 404
    response = client_for(provider).patch(f"/api/v1/datasets/{dataset.pk}/", {"price": "-3"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    response = client_for(provider).patch(f"/api/v1/datasets/{dataset.pk}/", {"title": "Better"}, format="json")
    # A listed dataset's new title waits for a moderator (tests/marketplace/services/test_moderation_descriptions.py).
    assert response.status_code == 200 and response.json()["pending_edit"]["title"] == "Better"


def test_illegal_transition_is_409(provider, staff):
    dataset = make_dataset(owner=provider)
    response = client_for(staff).post(f"/api/v1/datasets/{dataset.pk}/approve/", {"reason": "ok"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"
    assert response.json()["status"] == "draft"


def test_bad_uploads_get_clear_errors(provider):
    client = client_for(provider)
    cases = [
        (b"", "empty.csv", 400, "empty_file"),
        (b"a,b\n1,2\n1,2,3\n", "bad.csv", 400, "malformed_csv"),
        (b"not parquet", "x.parquet", 400, "invalid_parquet"),
    ]
    for data, name, status, code in cases:
        response = upload(client, data=data, name=name)
        assert (response.status_code, response.json()["code"]) == (status, code), name
    response = upload(client, epsilon_total="1", epsilon_per_job="2")
    assert response.json()["code"] == "invalid_budget"
    assert not Dataset.objects.exists()


def test_upload_over_the_limit_is_413_through_the_real_upload_handler(provider, settings, isolated_storage):
    settings.DATASET_MAX_UPLOAD_BYTES = 50_000
    client = Client()
    client.force_login(provider)
    big = b"a,b\n" + b"1,2\n" * 20_000  # 80 kB
    response = client.post("/api/v1/datasets/", {"title": "Big", "file": SimpleUploadedFile("big.csv", big)})
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert "50,000 bytes" in response.json()["detail"]
    assert not Dataset.objects.exists()
    assert not any(p.is_file() for p in isolated_storage.rglob("*")) if isolated_storage.exists() else True


def test_schema_endpoint_declares_and_validates(provider, buyer):
    dataset = make_dataset(owner=provider, declare=False)
    client = client_for(provider)
    got = client.get(f"/api/v1/datasets/{dataset.pk}/schema/").json()
    assert got["declared"] is None and got["proposed"]["columns"]
    bad = {"columns": [dict(c) for c in got["proposed"]["columns"]]}
    bad["columns"][0].update(min=100, max=1)
    response = client.put(f"/api/v1/datasets/{dataset.pk}/schema/", bad, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_schema"
    assert "must not be greater than max" in response.json()["detail"]
    schema = declarable_schema(dataset, DEFAULT_CSV, "data.csv")
    response = client.put(f"/api/v1/datasets/{dataset.pk}/schema/", schema, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_public_row_count"
    assert "public row count" in response.json()["detail"]
    for bad_count in (0, -5, "lots", 1.5):
        response = client.put(
            f"/api/v1/datasets/{dataset.pk}/schema/", {**schema, "public_row_count": bad_count}, format="json"
        )
        assert response.status_code == 400 and response.json()["code"] == "invalid_public_row_count", bad_count
    response = client.put(
        f"/api/v1/datasets/{dataset.pk}/schema/",
        {**schema, "public_row_count": 30, "holdout_fraction": 0.9},
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_holdout_fraction"
    response = client.put(
        f"/api/v1/datasets/{dataset.pk}/schema/",
        {**schema, "public_row_count": 30, "holdout_fraction": 0.25},
        format="json",
    )
    body = response.json()
    assert response.status_code == 200 and body["declared"]["columns"][0]["name"] == "age"
    assert body["public_row_count"] == 30 and body["holdout_fraction"] == 0.25
    response = client_for(buyer).put(f"/api/v1/datasets/{dataset.pk}/schema/", schema, format="json")
    assert response.status_code == 404  # a draft is invisible to others


def test_moderation_flow_over_the_api(provider, buyer, staff):
    dataset = make_dataset(owner=provider)
    owner, mod = client_for(provider), client_for(staff)
    assert owner.post(f"/api/v1/datasets/{dataset.pk}/submit/").json()["status"] == "pending_review"
    queue = mod.get("/api/v1/moderation/queue/").json()
    assert [item["id"] for item in queue["results"]] == [dataset.pk]
    assert client_for(buyer).get("/api/v1/moderation/queue/").status_code == 403
    assert owner.post(f"/api/v1/datasets/{dataset.pk}/approve/", {"reason": "self"}).status_code == 403
    response = mod.post(f"/api/v1/datasets/{dataset.pk}/approve/", {}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "reason_required"
    assert mod.post(f"/api/v1/datasets/{dataset.pk}/approve/", {"reason": "Clean schema"}).json()["status"] == "listed"
    assert client_for(buyer).get("/api/v1/datasets/?q=").json()["count"] == 1
    report = client_for(buyer).post(f"/api/v1/datasets/{dataset.pk}/reports/", {"reason": "Spam"}, format="json")
    assert report.status_code == 201
    assert mod.get("/api/v1/moderation/queue/?status=listed&reported=1").json()["results"][0]["open_reports"] == 1
    resolved = mod.post(
        f"/api/v1/moderation/reports/{report.json()['id']}/resolve/",
        {"resolution": "Not spam", "dismiss": True},
        format="json",
    )
    assert resolved.json()["status"] == "dismissed"
    assert (
        mod.post(f"/api/v1/datasets/{dataset.pk}/delist/", {"reason": "Provider asked"}).json()["status"] == "delisted"
    )
    assert client_for(buyer).get(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    # the provider sees their own audit log; another provider sees none of it
    log = owner.get("/api/v1/moderation/log/").json()["results"]
    assert [e["action"] for e in log] == ["delist", "dismiss_report", "report", "approve", "submit"]
    assert log[0]["actor"] == "moderator" and log[0]["reason"] == "Provider asked"
    assert client_for(UserFactory(username="other")).get("/api/v1/moderation/log/").json()["count"] == 0
    assert ModerationLogEntry.objects.count() == 5


def test_catalogue_api_filters_sorts_and_paginates(provider, staff, api):
    for i in range(25):
        make_dataset(
            owner=provider,
            title=f"Sensor batch {i}",
            tags=["iot"] if i % 2 else ["energy"],
            price=str(i),
            status="listed",
            moderator=staff,
        )
    page = api.get("/api/v1/datasets/?tags=iot&sort=-price&page_size=5").json()
    assert page["count"] == 12
    assert [r["price"] for r in page["results"]] == ["23.000000", "21.000000", "19.000000", "17.000000", "15.000000"]
    assert "page=2" in page["next"]
    assert api.get("/api/v1/datasets/?price_min=10&price_max=12").json()["count"] == 3
    # full-text pages (one narrow ranked query on PostgreSQL) keep totals, order and related data
    first = api.get("/api/v1/datasets/?q=sensor&sort=price&page_size=10").json()
    last = api.get("/api/v1/datasets/?q=sensor&sort=price&page_size=10&page=3").json()
    assert (first["count"], len(first["results"]), len(last["results"])) == (25, 10, 5)
    assert [r["price"] for r in first["results"]][:3] == ["0.000000", "1.000000", "2.000000"]
    assert first["results"][0]["tags"] == ["energy"] and first["results"][0]["owner"] == "provider"
    assert last["next"] is None and "page=2" in last["previous"]
    assert api.get("/api/v1/datasets/?q=sensor&page=4&page_size=10").status_code == 404
    response = api.get("/api/v1/datasets/?sort=bogus")
    assert response.status_code == 400 and response.json()["code"] == "invalid_sort"
    assert api.get("/api/v1/datasets/?price_min=abc").json()["code"] == "invalid_price_min"
    assert api.get("/api/v1/datasets/?page=999").status_code == 404
    assert api.get("/api/v1/datasets/?licence=GPL").json()["code"] == "invalid_licence"


def test_mock_download_is_synthetic_and_never_the_private_file(provider, staff, api):
    client = client_for(provider)
    dataset_id = upload(client).json()["id"]
    dataset = Dataset.objects.get(pk=dataset_id)
    from marketplace.services.datasets import dataset_schema_declare, dataset_validate
    from marketplace.services.moderation import dataset_transition

    dataset = dataset_validate(dataset_id=dataset_id)
    schema = declarable_schema(dataset, PRIVATE_CSV.replace(SECRET, b"a"), "private.csv")
    dataset_schema_declare(dataset=dataset, actor=provider, schema=schema, public_row_count=40)
    dataset_transition(dataset=dataset, actor=provider, action="submit")
    dataset_transition(dataset=dataset, actor=staff, action="approve", reason="ok")
    response = api.get(f"/api/v1/datasets/{dataset_id}/mock/?rows=50&seed=3")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["age", "income", "group"] and len(rows) == 51
    declared = {c["name"]: c for c in Dataset.objects.get(pk=dataset_id).declared_schema["columns"]}
    assert all(declared["age"]["min"] <= int(r[0]) <= declared["age"]["max"] for r in rows[1:])
    assert all(r[2] in declared["group"]["categories"] for r in rows[1:])
    # the rare private category (seen once) was not proposed, so the mock cannot reveal it
    assert SECRET not in response.content
    assert api.get(f"/api/v1/datasets/{dataset_id}/mock/?rows=0").json()["code"] == "invalid_rows"
    # no endpoint returns the private bytes
    for path in [
        f"/api/v1/datasets/{dataset_id}/",
        f"/api/v1/datasets/{dataset_id}/schema/",
        f"/api/v1/datasets/{dataset_id}/mock/",
        "/api/v1/datasets/",
        "/api/v1/datasets/mine/",
        "/api/schema/",
    ]:
        body = client.get(path).content
        assert SECRET not in body and b"33,4242" not in body, path


def test_provider_mock_upload_is_served(provider, staff, api):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    client = client_for(provider)
    response = client.post(
        f"/api/v1/datasets/{dataset.pk}/mock/",
        {"file": SimpleUploadedFile("mock.csv", b"age,income,group\n40,5000,b\n")},
        format="multipart",
    )
    assert response.status_code == 200 and response.json()["has_uploaded_mock"] is True
    got = api.get(f"/api/v1/datasets/{dataset.pk}/mock/")
    assert got.content == b"age,income,group\n40,5000,b\n" and got["X-Mock-Data"] == "uploaded"
    assert api.get(f"/api/v1/datasets/{dataset.pk}/mock/?source=synthetic")["X-Mock-Data"] == "synthetic"


def test_throttling_answers_429_with_json(provider, settings, api):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "3/min", "user": "3/min"}}
    from django.core.cache import cache
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        codes = [api.get("/api/v1/datasets/").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 429
        assert api.get("/api/v1/datasets/").json()["code"] == "throttled"
    finally:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": "10000/min", "user": "10000/min"},
        }
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        cache.clear()


def test_catalogue_totals_are_cached_briefly_when_configured(provider, staff, api, settings):
    from django.core.cache import cache

    cache.clear()
    settings.CATALOGUE_COUNT_CACHE_SECONDS = 30
    settings.CATALOGUE_PAGE_CACHE_SIZE = 0  # with the page cache (PostgreSQL) totals are exact: see its tests
    make_dataset(owner=provider, title="First", status="listed", moderator=staff)
    assert api.get("/api/v1/datasets/?sort=newest").json()["count"] == 1
    make_dataset(owner=provider, title="Second", status="listed", moderator=staff)
    body = api.get("/api/v1/datasets/?sort=newest").json()
    assert body["count"] == 1 and len(body["results"]) == 2  # the rows are live; only the total lags
    cache.clear()
    assert api.get("/api/v1/datasets/?sort=newest").json()["count"] == 2


def test_mock_downloads_defuse_spreadsheet_formulas_and_refuse_a_bad_seed(provider, staff, api):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    client = client_for(provider)
    hostile = b'age,income,group\n-5,"=HYPERLINK(""http://evil.example"",""x"")",@SUM(A1)\n40,+1e3,-cmd\n'
    response = client.post(
        f"/api/v1/datasets/{dataset.pk}/mock/", {"file": SimpleUploadedFile("mock.csv", hostile)}, format="multipart"
    )
    assert response.status_code == 200, response.content
    rows = list(csv.reader(io.StringIO(api.get(f"/api/v1/datasets/{dataset.pk}/mock/").content.decode())))
    assert rows[1] == ["-5", '\'=HYPERLINK("http://evil.example","x")', "'@SUM(A1)"]
    assert rows[2] == ["40", "+1e3", "'-cmd"], "plain numbers stay numbers"
    for seed in ("-1", str(2**64)):
        refused = api.get(f"/api/v1/datasets/{dataset.pk}/mock/?source=synthetic&seed={seed}")
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_seed"
