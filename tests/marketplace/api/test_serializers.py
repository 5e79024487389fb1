"""The catalogue list's fast path (plain rows on PostgreSQL, a precomputed field plan everywhere)
gives exactly what DRF's own serializer loop gives for the model rows."""

from decimal import Decimal

import pytest
from django.db.models import JSONField, Value
from rest_framework import serializers

from marketplace.api.serializers import DatasetListSerializer
from marketplace.models import Dataset
from marketplace.selectors.catalog import listing_search
from tests.factories import make_dataset

pytestmark = pytest.mark.django_db


def reference(datasets) -> list[dict]:
    """DRF's generic Serializer.to_representation over model instances: the behaviour to keep."""
    serializer = DatasetListSerializer()
    return [serializers.Serializer.to_representation(serializer, d) for d in datasets]


@pytest.fixture
def catalogue(provider, staff):
    a = make_dataset(
        owner=provider,
        title="Heart outcomes",
        tags=("zeta", "air-quality", "airline", "a-b", "ab"),
        price="0.123456",
        status="listed",
        moderator=staff,
    )
    b = make_dataset(owner=provider, title="Heart rates", tags=(), price="0", status="listed", moderator=staff)
    c = make_dataset(owner=staff, title="Energy use", tags=("energy",), price="120", status="listed", moderator=staff)
    make_dataset(owner=provider, title="Heart draft", status="draft")
    # Edge values the serializer must render the same way: no schema (SQL NULL and JSON null), an
    # uploaded mock, no listing time, odd decimals.
    Dataset.objects.filter(pk=a.pk).update(declared_schema=None, mock_storage_name="mock/a.csv", listed_at=None)
    Dataset.objects.filter(pk=b.pk).update(declared_schema=Value(None, JSONField()), epsilon_total=Decimal("7.5"))
    Dataset.objects.filter(pk=c.pk).update(epsilon_per_job=Decimal("0.0001"), delta=1e-9)
    return a, b, c


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sort": "price"},
        {"sort": "-price", "page_size": "2", "page": "2"},
        {"tags": "airline"},
        {"q": "heart"},
        {"q": "heart", "sort": "newest", "page_size": "1", "page": "2"},
    ],
)
def test_list_rows_match_drf_serializer_on_model_rows(catalogue, api, params):
    body = api.get("/api/v1/datasets/", params).json()
    kwargs = {k: v for k, v in params.items() if k in ("q", "sort")}
    if "q" in kwargs:
        kwargs["query"] = kwargs.pop("q")
    if "tags" in params:
        kwargs["tags"] = [params["tags"]]
    size = int(params.get("page_size", 20))
    start = (int(params.get("page", 1)) - 1) * size
    expected = reference(list(listing_search(**kwargs))[start : start + size])
    assert body["results"] == expected
    assert body["count"] == listing_search(**kwargs).count()
    assert expected, "each case shows at least one row"


def test_rows_show_what_model_rows_show(catalogue, api):
    a, b, c = catalogue
    rows = {row["id"]: row for row in api.get("/api/v1/datasets/").json()["results"]}
    assert rows[a.pk]["tags"] == ["a-b", "ab", "air-quality", "airline", "zeta"]
    assert rows[a.pk]["schema_confirmed"] is False and rows[a.pk]["has_uploaded_mock"] is True
    assert rows[b.pk]["schema_confirmed"] is False and rows[b.pk]["tags"] == []
    assert rows[c.pk]["schema_confirmed"] is True and rows[c.pk]["owner"] == "moderator"
    assert rows[a.pk]["price"] == "0.123456" and rows[a.pk]["listed_at"] is None
