"""Catalogue search through the API: on PostgreSQL full-text pages are read from the narrow search
table (migration 0004), which triggers keep in step with every write to datasets."""

from decimal import Decimal

import pytest
from django.db import connection

from marketplace.api.pagination import CataloguePaginator
from marketplace.models import Dataset
from marketplace.selectors.catalog import catalogue_search, listing_search
from marketplace.services.datasets import ListingFields, dataset_update
from marketplace.services.moderation import dataset_edit_decide, dataset_transition
from tests.factories import make_dataset

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the search table is PostgreSQL-only")


def found(api, query: str, **params) -> list[int]:
    body = api.get("/api/v1/datasets/", {"q": query, **params}).json()
    ids = [row["id"] for row in body["results"]]
    assert body["count"] == len(ids)
    return ids


def update_approved(dataset, owner, moderator, fields):
    """An owner's edit of a listed dataset's public text shows once a moderator approves it."""
    dataset = dataset_update(dataset=dataset, actor=owner, fields=fields)
    return dataset_edit_decide(dataset=dataset, actor=moderator, approve=True, reason="Checked.")


def search_table_ids() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT dataset_id FROM marketplace_datasetsearch")
        return {row[0] for row in cursor.fetchall()}


@postgres_only
def test_search_table_follows_every_kind_of_dataset_write(provider, staff, api):
    dataset = make_dataset(owner=provider, title="Quantum widgets", description="Lab notes.", status="listed")
    draft = make_dataset(owner=provider, title="Quantum draft", description="Not public.")
    assert found(api, "quantum") == [dataset.pk]
    assert search_table_ids() == {dataset.pk}

    # the service (Model.save)
    dataset = update_approved(dataset, provider, staff, ListingFields(title="Photon gadgets"))
    assert found(api, "quantum") == []
    assert found(api, "photon") == [dataset.pk]

    # queryset.update(), which no Python signal sees
    Dataset.objects.filter(pk=dataset.pk).update(description="Zebra crossings", price=Decimal("80"))
    assert found(api, "zebra") == [dataset.pk]
    assert found(api, "lab") == []
    assert found(api, "zebra", price_max="50") == []
    assert found(api, "zebra", price_min="50", licence="CC-BY-4.0") == [dataset.pk]
    dataset = update_approved(dataset, provider, staff, ListingFields(licence="CC0-1.0"))
    assert found(api, "zebra", licence="CC-BY-4.0") == []
    assert found(api, "zebra", licence="CC0-1.0") == [dataset.pk]

    # status changes through the moderation service
    dataset_transition(dataset=dataset, actor=staff, action="delist", reason="Stale")
    assert found(api, "photon") == []
    dataset = dataset_transition(dataset=dataset, actor=staff, action="relist", reason="Fixed")
    assert found(api, "photon") == [dataset.pk]
    Dataset.objects.filter(pk=draft.pk).update(status=Dataset.Status.LISTED)
    assert found(api, "quantum") == [draft.pk]

    # bulk inserts and deletes
    [bulk] = Dataset.objects.bulk_create(
        [
            Dataset(
                owner=provider,
                title="Photon counts",
                status=Dataset.Status.LISTED,
                file_format="csv",
                original_filename="x.csv",
                storage_name="private/bulk.enc",
                file_size=1,
                file_sha256="0" * 64,
            )
        ]
    )
    assert sorted(found(api, "photon")) == sorted([dataset.pk, bulk.pk])
    Dataset.objects.filter(pk=dataset.pk).delete()
    assert found(api, "photon") == [bulk.pk]
    assert search_table_ids() == {bulk.pk, draft.pk}


CASES = [
    {"query": "sensor"},
    {"query": "sensor", "sort": "price"},
    {"query": "sensor", "sort": "-price"},
    {"query": "sensor", "sort": "oldest"},
    {"query": "sensor readings", "sort": "newest", "tags": ["iot"]},
    {"query": "sensor", "licence": "CC0-1.0", "price_max": Decimal("20")},
    {"query": "sensor", "tags": ["iot", "energy"], "price_min": Decimal("3")},
    {"query": "battery"},
]


def test_paged_searches_match_the_queryset(provider, staff, api):
    for i in range(14):
        make_dataset(
            owner=provider,
            title=f"Sensor batch {i}" + (" sensor readings" if i % 3 == 0 else ""),
            description="Battery sensor." if i % 4 == 0 else "Readings.",
            tags=["iot", "energy"] if i % 2 else ["energy"],
            price=str(i % 7),
            licence="CC0-1.0" if i % 3 else "CC-BY-4.0",
            status="listed" if i != 5 else "pending_review",
            moderator=staff,
        )
    for case in CASES:
        qs = listing_search(**case)
        expected = [d.pk for d in qs]
        assert (catalogue_search(**case).full_text is not None) == (connection.vendor == "postgresql")
        params = {"q": case["query"], "sort": case.get("sort", ""), "tags": ",".join(case.get("tags", []))}
        params.update({k: str(case[k]) for k in ("licence", "price_min", "price_max") if k in case})
        pages, page = [], 1
        while True:
            body = api.get("/api/v1/datasets/", {**params, "page_size": 4, "page": page}).json()
            assert body["count"] == len(expected), case
            pages += [row["id"] for row in body["results"]]
            if not body["next"]:
                break
            page += 1
        assert pages == expected, case
        # the web catalogue's paginator
        paginator = CataloguePaginator(catalogue_search(**case), 3)
        assert paginator.count == len(expected)
        assert [d.pk for p in paginator.page_range for d in paginator.page(p)] == expected, case


def test_search_totals_are_cached_briefly_when_configured(provider, staff, api, settings):
    from django.core.cache import cache

    cache.clear()
    settings.CATALOGUE_COUNT_CACHE_SECONDS = 30
    settings.CATALOGUE_PAGE_CACHE_SIZE = 0  # with the page cache (PostgreSQL) totals are exact: see its tests
    make_dataset(owner=provider, title="Sensor one", status="listed", moderator=staff)
    assert api.get("/api/v1/datasets/?q=sensor").json()["count"] == 1
    make_dataset(owner=provider, title="Sensor two", status="listed", moderator=staff)
    body = api.get("/api/v1/datasets/?q=sensor").json()
    assert body["count"] == 1 and len(body["results"]) == 2  # the rows are live; only the total lags
    assert api.get("/api/v1/datasets/?q=sensor&page=2").status_code == 404
    cache.clear()
    assert api.get("/api/v1/datasets/?q=sensor").json()["count"] == 2


@pytest.mark.parametrize("query", ["sensor", ""])
@pytest.mark.parametrize("page", ["0", "-1", "abc", "1e3", "99999999999999999999", "2"])
def test_a_bad_page_is_a_json_404_on_both_search_paths(provider, staff, api, query, page):
    """Full-text searches and plain lists page differently (see CataloguePagination); neither
    answers a page that cannot exist with a 500 or an empty 200."""
    make_dataset(owner=provider, title="Sensor batch", status="listed", moderator=staff)
    response = api.get("/api/v1/datasets/", {"q": query, "page": page})
    assert response.status_code == 404, (query, page)
    assert "Invalid page" in response.json()["detail"]
