from decimal import Decimal

import pytest

from common.errors import InvalidInput, NotFound
from marketplace.selectors.catalog import dataset_get_visible, listing_search
from tests.factories import UserFactory, make_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(provider, staff):
    heart = make_dataset(
        owner=provider,
        title="Heart disease outcomes",
        description="Cardiology cohort study.",
        tags=["health", "cardiology"],
        price="25",
        licence="CC-BY-NC-4.0",
        status="listed",
        moderator=staff,
    )
    loans = make_dataset(
        owner=provider,
        title="Loan defaults",
        description="Consumer credit applications.",
        tags=["finance"],
        price="120",
        licence="proprietary",
        status="listed",
        moderator=staff,
    )
    meters = make_dataset(
        owner=provider,
        title="Electricity smart meters",
        description="Household energy use.",
        tags=["energy", "health"],
        price="0",
        status="listed",
        moderator=staff,
    )
    hidden = make_dataset(owner=provider, title="Heart draft", description="Not public.", status="pending_review")
    return {"heart": heart, "loans": loans, "meters": meters, "hidden": hidden}


def titles(qs):
    return [d.title for d in qs]


def test_search_matches_text_and_hides_unlisted(catalogue):
    assert titles(listing_search(query="heart")) == ["Heart disease outcomes"]
    assert titles(listing_search(query="cardiology")) == ["Heart disease outcomes"]  # description
    assert titles(listing_search(query="nothing-like-this")) == []


def test_filters_combine(catalogue):
    assert set(titles(listing_search(tags=["health"]))) == {"Heart disease outcomes", "Electricity smart meters"}
    assert titles(listing_search(tags=["health", "energy"])) == ["Electricity smart meters"]
    assert titles(listing_search(licence="proprietary")) == ["Loan defaults"]
    assert set(titles(listing_search(price_min=Decimal("10"), price_max=Decimal("100")))) == {"Heart disease outcomes"}


def test_sorting(catalogue):
    assert titles(listing_search(sort="price")) == [
        "Electricity smart meters",
        "Heart disease outcomes",
        "Loan defaults",
    ]
    assert titles(listing_search(sort="-price"))[0] == "Loan defaults"
    assert titles(listing_search(sort="newest"))[0] == "Electricity smart meters"
    with pytest.raises(InvalidInput, match="Unknown sort"):
        listing_search(sort="random")
    with pytest.raises(InvalidInput, match="price_min"):
        listing_search(price_min=Decimal("5"), price_max=Decimal("1"))


def test_visibility(catalogue, provider, staff):
    stranger = UserFactory(username="stranger")
    hidden = catalogue["hidden"]
    with pytest.raises(NotFound):
        dataset_get_visible(dataset_id=hidden.pk, user=stranger)
    with pytest.raises(NotFound):
        dataset_get_visible(dataset_id=hidden.pk, user=None)
    assert dataset_get_visible(dataset_id=hidden.pk, user=provider) == hidden
    assert dataset_get_visible(dataset_id=hidden.pk, user=staff) == hidden
    with pytest.raises(NotFound):
        dataset_get_visible(dataset_id="abc", user=staff)


def test_catalogue_search_is_a_typed_result_whose_pages_stay_live_under_a_cached_total(catalogue, settings, provider):
    from django.core.cache import cache

    from marketplace.selectors.catalog import CatalogueSearch, catalogue_search

    cache.clear()
    settings.CATALOGUE_COUNT_CACHE_SECONDS = 30
    search = catalogue_search(tags=["health"], sort="price")
    assert isinstance(search, CatalogueSearch)
    # The total depends on what matches, not on the order: both sorts share one cached total.
    assert search.count_cache_key == catalogue_search(tags=["health"], sort="newest").count_cache_key
    assert search.count_cache_key != catalogue_search(tags=["energy"]).count_cache_key
    assert search.total() == 2
    assert [d.title for d in search.page(offset=0, limit=10).rows] == [
        "Electricity smart meters",
        "Heart disease outcomes",
    ]
    make_dataset(owner=provider, title="Another health set", tags=["health"], price="50", status="listed")
    assert search.total() == 2  # the cached total, a few seconds stale by design
    # ...but the rows are live, never trimmed to it
    assert [d.title for d in search.page(offset=0, limit=10).rows][-1] == "Another health set"
    assert search.count() == 3
    cache.clear()
