"""Bad catalogue input gets a clear 400, a slow statement a 503, and /api/schema/ holds up under
threads: repeated tags, a NUL in the search, absurd bounds, PostgreSQL's statement_timeout for the
web, and concurrent schema requests, through the test client and through a real gunicorn."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import time
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client

from common.errors import InvalidInput
from marketplace.selectors.catalog import MAX_FILTER_TAGS, listing_search
from tests.factories import make_dataset
from tests.gunicorn_support import gunicorn_server, production_env

postgres_only = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="statement_timeout is PostgreSQL's"
)


@pytest.fixture
def listed(provider, staff):
    both = make_dataset(
        owner=provider, title="Heart and energy", tags=["health", "energy"], status="listed", moderator=staff
    )
    health = make_dataset(owner=provider, title="Heart only", tags=["health"], status="listed", moderator=staff)
    return both, health


@pytest.mark.django_db
def test_tags_are_deduplicated_combined_with_and_and_capped(listed, api):
    assert [d.title for d in listing_search(tags=["Health", " health ", "health", "energy", "ENERGY"])] == [
        "Heart and energy"
    ]
    assert {d.title for d in listing_search(tags=["health"] * 50)} == {"Heart and energy", "Heart only"}
    assert [d.title for d in listing_search(tags=["health", "no-such-tag"])] == []
    # One grouped subquery, not a join per tag.
    sql = str(listing_search(tags=[f"t{i}" for i in range(MAX_FILTER_TAGS)]).query)
    assert sql.count('"marketplace_dataset_tags"') == 1 and "HAVING COUNT" in sql
    with pytest.raises(InvalidInput) as too_many:
        listing_search(tags=[f"t{i}" for i in range(40)])
    assert too_many.value.code == "too_many_tags" and "at most 10 tags (40 given)" in too_many.value.detail

    # The API takes the parameter repeated and comma-separated alike.
    response = api.get("/api/v1/datasets/?" + urlencode([("tags", "health"), ("tags", "energy,health")]))
    assert [row["title"] for row in response.json()["results"]] == ["Heart and energy"]
    forty = api.get("/api/v1/datasets/?" + urlencode([("tags", f"t{i}") for i in range(40)]))
    assert forty.status_code == 400
    assert forty.json() == {
        "code": "too_many_tags",
        "detail": "Filter by at most 10 tags (40 given).",
        "max_tags": 10,
    }
    page = Client().get("/", {"tags": ",".join(f"t{i}" for i in range(11))})
    assert page.status_code == 400 and "Filter by at most 10 tags (11 given)." in page.content.decode()


@pytest.mark.django_db
def test_nul_bytes_and_absurd_bounds_are_400s(listed, provider, staff, api):
    for query in ({"q": "heart\x00"}, {"tags": "health\x00"}):
        response = api.get("/api/v1/datasets/", query)
        assert response.status_code == 400 and response.json()["code"] == "invalid_query", query
    api.force_authenticate(staff)
    queue = api.get("/api/v1/moderation/queue/", {"q": "heart\x00"})
    assert queue.status_code == 400 and queue.json()["code"] == "invalid_query"
    api.force_authenticate(None)
    page = Client().get("/", {"q": "heart\x00"})
    assert page.status_code == 400 and "Null characters are not allowed." in page.content.decode()
    assert Client().get("/", {"tags": "x\x00"}).status_code == 400

    bound = api.get("/api/v1/datasets/", {"price_max": "1e400"})
    assert bound.status_code == 400 and bound.json()["code"] == "invalid_price_max"
    assert "from 0 to below 1,000,000,000,000" in bound.json()["detail"]
    assert api.get("/api/v1/datasets/", {"price_min": "-1"}).json()["code"] == "invalid_price_min"
    assert Client().get("/", {"price_max": "1e400"}).status_code == 400

    # A schema bound of 1e400 (JSON reads it as infinity) and a mock seed of -1.
    draft = make_dataset(owner=provider, declare=False)
    api.force_authenticate(provider)
    columns = [dict(col) for col in draft.proposed_schema["columns"]]
    numeric = next(col for col in columns if col["type"] in ("integer", "float"))
    numeric["max"] = 1e400
    body = json.dumps({"columns": columns, "public_row_count": 30}).replace("Infinity", "1e400")
    schema = api.generic("PUT", f"/api/v1/datasets/{draft.pk}/schema/", body, content_type="application/json")
    assert schema.status_code == 400 and "finite" in schema.json()["detail"]
    seed = api.get(f"/api/v1/datasets/{listed[0].pk}/mock/", {"source": "synthetic", "seed": "-1"})
    assert seed.status_code == 400 and seed.json()["code"] == "invalid_seed"


@postgres_only
@pytest.mark.django_db
def test_tests_and_commands_run_without_the_web_statement_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


# --- through gunicorn with threaded workers ----------------------------------------------------


def _get(port: int, path: str) -> tuple[int, dict, bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body, time.monotonic() - started


@pytest.fixture
def gunicorn_threaded(tmp_path):
    env = production_env(tmp_path, DATABASE_STATEMENT_TIMEOUT_MS="300", DJANGO_SECURE_COOKIES="false")
    args = ["--workers", "1", "--worker-class", "gthread", "--threads", "8"]
    with gunicorn_server(tmp_path, args=args, env=env) as server:
        yield server.port, server.log


@postgres_only
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_gunicorn_threads_schema_tags_nul_and_a_statement_past_the_timeout(provider, staff, gunicorn_threaded):
    make_dataset(owner=provider, title="Heart only", tags=["health"], status="listed", moderator=staff)
    port, log = gunicorn_threaded

    # 16 first requests at once to a fresh threaded worker: generation raced and answered 500s.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: _get(port, "/api/schema/?format=json"), range(16)))
    assert [status for status, *_ in answers] == [200] * 16, log.read_text()[-3000:]
    assert len({body for _, _, body, _ in answers}) == 1 and b'"openapi"' in answers[0][2]

    status, _, body, took = _get(port, "/api/v1/datasets/?" + urlencode([("tags", f"t{i}") for i in range(40)]))
    assert status == 400 and json.loads(body)["code"] == "too_many_tags" and took < 5
    many = [("tags", "health")] * 40 + [("tags", f"t{i}") for i in range(9)]  # 10 distinct, repeated
    status, _, body, took = _get(port, "/api/v1/datasets/?" + urlencode(many))
    assert status == 200 and json.loads(body)["count"] == 0 and took < 5
    status, _, body, _ = _get(port, "/api/v1/datasets/?q=heart%00")
    assert status == 400 and json.loads(body)["code"] == "invalid_query"
    assert _get(port, "/?q=heart%00")[0] == 400

    # A statement that waits past the web's statement_timeout (here on a lock another session holds).
    import psycopg2

    db = connection.settings_dict
    blocker = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"] or "postgres", host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )
    try:
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE marketplace_dataset IN ACCESS EXCLUSIVE MODE")
        status, headers, body, took = _get(port, "/api/v1/datasets/?sort=oldest")
        assert status == 503, body[:500]
        assert json.loads(body) == {
            "code": "query_timeout",
            "detail": "This request took too long in the database and was stopped. Try again in a moment, "
            "or narrow the search.",
        }
        assert headers.get("Retry-After") == "5" and took < 10
        status, _, body, _ = _get(port, "/?sort=oldest")
        assert status == 503 and b"took too long in the database" in body
    finally:
        blocker.rollback()
        blocker.close()
    status, _, body, _ = _get(port, "/api/v1/datasets/?sort=oldest")
    assert status == 200 and json.loads(body)["count"] == 1
    text = log.read_text()
    assert "Traceback" not in text and "Worker (pid" not in text, text[-3000:]
