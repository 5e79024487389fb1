"""Reading the catalogue and datasets, with visibility rules in one place."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from marketplace.errors import InvalidInput, NotFound
from marketplace.models import Dataset, Licence, User

SORTS = ("relevance", "newest", "oldest", "price", "-price")
TS_CONFIG = "english"


def _uses_fulltext() -> bool:
    return connection.vendor == "postgresql"


def listing_search(
    *,
    query: str = "",
    tags: Iterable[str] = (),
    licence: str | None = None,
    price_min: Decimal | None = None,
    price_max: Decimal | None = None,
    sort: str | None = None,
) -> QuerySet[Dataset]:
    """Listed datasets matching the query and filters.

    On PostgreSQL the query is full-text (``websearch_to_tsquery`` over a generated, GIN-indexed
    tsvector of title and description, ranked); on SQLite every word must appear in the title,
    description or tags. Tags combine with AND. ``sort`` defaults to relevance with a query and
    newest without."""
    query = (query or "").strip()[:200]
    sort = sort or ("relevance" if query else "newest")
    if sort not in SORTS:
        raise InvalidInput(f"Unknown sort '{sort}'; use one of {', '.join(SORTS)}.", code="invalid_sort")
    if licence and licence not in Licence.values:
        raise InvalidInput(
            f"Unknown licence '{licence}'; use one of {', '.join(Licence.values)}.", code="invalid_licence"
        )
    if price_min is not None and price_max is not None and price_min > price_max:
        raise InvalidInput("price_min must not be above price_max.", code="invalid_price_range")

    qs = Dataset.objects.filter(status=Dataset.Status.LISTED).select_related("owner").prefetch_related("tags")
    ranked = False
    if query:
        if _uses_fulltext():
            qs = qs.extra(
                where=[f"marketplace_dataset.search_vector @@ websearch_to_tsquery('{TS_CONFIG}', %s)"],
                params=[query],
            )
            if sort == "relevance":
                qs = qs.annotate(
                    rank=RawSQL(
                        f"ts_rank(marketplace_dataset.search_vector, websearch_to_tsquery('{TS_CONFIG}', %s))",
                        (query,),
                    )
                )
                ranked = True
        else:
            for word in query.split()[:10]:
                qs = qs.filter(Q(title__icontains=word) | Q(description__icontains=word) | Q(tags__name=word.lower()))
            qs = qs.distinct()
    for tag in tags:
        tag = tag.strip().lower()
        if tag:
            qs = qs.filter(tags__name=tag)
    if licence:
        qs = qs.filter(licence=licence)
    if price_min is not None:
        qs = qs.filter(price__gte=price_min)
    if price_max is not None:
        qs = qs.filter(price__lte=price_max)

    order = {
        "newest": ("-created_at", "-id"),
        "oldest": ("created_at", "id"),
        "price": ("price", "-created_at", "-id"),
        "-price": ("-price", "-created_at", "-id"),
        "relevance": ("-rank", "-created_at", "-id") if ranked else ("-created_at", "-id"),
    }[sort]
    qs = qs.order_by(*order)
    # Every full-text match is visited to rank or filter it, so the API paginator takes the total
    # from the same query (see marketplace.api.pagination).
    qs.count_in_page_query = bool(query) and _uses_fulltext()
    qs.count_cache_seconds = settings.CATALOGUE_COUNT_CACHE_SECONDS
    return qs


def dataset_get_visible(*, dataset_id: int | str, user: User | None) -> Dataset:
    """A dataset the user may see: listed ones for everyone; any state for its owner and staff.
    Anything else is reported as not found, so hidden listings do not leak their existence."""
    try:
        pk = int(dataset_id)
    except (TypeError, ValueError) as exc:
        raise NotFound("No such dataset.") from exc
    dataset = Dataset.objects.select_related("owner").prefetch_related("tags").filter(pk=pk).first()
    if dataset is None:
        raise NotFound("No such dataset.")
    if dataset.status == Dataset.Status.LISTED:
        return dataset
    if user is not None and user.is_authenticated and (user.is_staff or dataset.owner_id == user.pk):
        return dataset
    raise NotFound("No such dataset.")


def datasets_of_owner(*, owner: User) -> QuerySet[Dataset]:
    return Dataset.objects.filter(owner=owner).prefetch_related("tags").order_by("-created_at", "-id")


def can_edit(*, dataset: Dataset, user: User | None) -> bool:
    return bool(user and user.is_authenticated and dataset.owner_id == user.pk)
