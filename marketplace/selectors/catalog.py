"""Reading the catalogue and datasets, with visibility rules in one place."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.core.cache import cache
from django.db import connection, connections
from django.db.models import BooleanField, Count, ExpressionWrapper, F, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from common.errors import InvalidInput, NotFound
from marketplace.models import Dataset, Licence, Tag, User

SORTS = ("relevance", "newest", "oldest", "price", "-price")
# A dataset carries at most 10 tags (services.datasets.MAX_TAGS), so more than 10 distinct tags
# can never all match.
MAX_FILTER_TAGS = 10
MAX_PRICE_BOUND = Decimal(10) ** 12
TS_CONFIG = "english"


def _uses_fulltext() -> bool:
    return connection.vendor == "postgresql"


# PostgreSQL only (migration 0004): one row per *listed* dataset with the columns a catalogue search
# reads, kept in step with marketplace_dataset by triggers.
SEARCH_TABLE = "marketplace_datasetsearch"
TS_QUERY = f"websearch_to_tsquery('{TS_CONFIG}', %s)"
SEARCH_ORDER = {
    "relevance": f"ts_rank(s.search_vector, {TS_QUERY}) DESC, s.created_at DESC, s.dataset_id DESC",
    "newest": "s.created_at DESC, s.dataset_id DESC",
    "oldest": "s.created_at ASC, s.dataset_id ASC",
    "price": "s.price ASC, s.created_at DESC, s.dataset_id DESC",
    "-price": "s.price DESC, s.created_at DESC, s.dataset_id DESC",
}


@dataclass(frozen=True)
class FullTextSearch:
    """A full-text catalogue search in its narrow form: the same matches, in the same order, as the
    ``Dataset`` queryset of its ``CatalogueSearch``, but read from the search table alone, so
    ranking thousands of matches never touches the wide dataset rows."""

    where: str
    params: tuple
    order_by: str
    order_params: tuple
    using: str = "default"

    def count_sql(self) -> tuple[str, tuple]:
        return f"SELECT COUNT(*) FROM {SEARCH_TABLE} s WHERE {self.where}", self.params  # noqa: S608

    def count(self) -> int:
        with connections[self.using].cursor() as cursor:
            cursor.execute(*self.count_sql())
            return cursor.fetchone()[0]

    def page(self, *, limit: int, offset: int, with_total: bool) -> tuple[list[int], int | None]:
        """The ids of one page, in order, and with ``with_total`` the number of matches (None when
        the page is empty: past the last one, or no matches at all, then 0 on the first page)."""
        ranked = f"SELECT s.dataset_id FROM {SEARCH_TABLE} s WHERE {self.where} ORDER BY {self.order_by}"  # noqa: S608
        params = (*self.params, *self.order_params)
        if with_total:
            # One pass over the matches for both; OFFSET 0 keeps PostgreSQL from flattening the
            # subquery, so the window counts the sorted ids.
            sql = f"SELECT ordered.id, COUNT(*) OVER () FROM ({ranked} OFFSET 0) AS ordered(id) LIMIT %s OFFSET %s"  # noqa: S608
        else:
            sql = f"{ranked} LIMIT %s OFFSET %s"
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, (*params, limit, offset))
            rows = cursor.fetchall()
        ids = [row[0] for row in rows]
        if not with_total:
            return ids, None
        return ids, rows[0][1] if rows else (0 if offset == 0 else None)


@dataclass(frozen=True)
class CataloguePage:
    """One page of a catalogue search: its rows in order (``Dataset`` instances, or plain rows from
    ``listing_rows``) and, when it was read with them, the number of matches (else None)."""

    rows: list
    total: int | None


@dataclass(frozen=True)
class CatalogueSearch:
    """What ``catalogue_search`` found, with everything a paginator needs to read it fast: the
    ``Dataset`` queryset (the matches in order), the narrow full-text form when the search is
    full-text (PostgreSQL), the key and lifetime under which its total may be cached (0: count
    every time), and whether pages may be read as plain rows (PostgreSQL, ``listing_rows``)."""

    queryset: QuerySet[Dataset]
    full_text: FullTextSearch | None
    count_cache_key: str
    count_cache_seconds: int
    plain_rows: bool

    def count(self) -> int:
        """The number of matches, counted now (on the search table for a full-text search)."""
        return self.full_text.count() if self.full_text is not None else self.queryset.count()

    def total(self) -> int:
        """The number of matches; a few seconds stale when ``count_cache_seconds`` allows it (a
        catalogue total a little old is fine, counting tens of thousands of listings per page is not)."""
        total = self.cached_total()
        if total is None:
            total = self.count()
            self.remember_total(total)
        return total

    def cached_total(self) -> int | None:
        return cache.get(self.count_cache_key) if self.count_cache_seconds else None

    def remember_total(self, total: int) -> None:
        if self.count_cache_seconds:
            cache.set(self.count_cache_key, total, self.count_cache_seconds)

    def page(self, *, offset: int, limit: int, plain: bool = False, with_total: bool = False) -> CataloguePage:
        """The matches ``[offset:offset + limit]``, as plain rows when ``plain`` and allowed, with
        ``with_total`` the total read in the same pass (full-text only; None otherwise, and when
        the page is past the last one). Rows are always live, whatever the cached total says."""
        plain = plain and self.plain_rows
        if self.full_text is None:
            if plain:
                return CataloguePage(listing_rows(self.queryset, offset=offset, limit=limit), None)
            return CataloguePage(list(self.queryset[offset : offset + limit]), None)
        ids, total = self.full_text.page(limit=limit, offset=offset, with_total=with_total)
        if plain:
            return CataloguePage(listing_rows(self.queryset, ids=ids), total)
        by_id = {
            dataset.pk: dataset
            for dataset in Dataset.objects.using(self.full_text.using)
            .filter(pk__in=ids)
            .select_related("owner")
            .prefetch_related("tags")
        }
        return CataloguePage([by_id[pk] for pk in ids if pk in by_id], total)


def _with_all_tags(tags: list[str]) -> QuerySet:
    """The ids of datasets carrying every one of ``tags`` (distinct names): one pass over the tag
    rows grouped by dataset, ``HAVING COUNT(*) = len(tags)``, however many tags are asked for.
    (A join per tag made 40 tags take over a minute.)"""
    through = Dataset.tags.through.objects
    return (
        through.filter(tag__name__in=tags)
        .values("dataset_id")
        .annotate(matched=Count("tag_id"))
        .filter(matched=len(tags))  # type: ignore[misc]  # the stubs' plugin misses annotations on a through model
        .values("dataset_id")
        .order_by()
    )


def _full_text_search(
    *, query: str, tags: list[str], licence: str | None, price_min, price_max, sort: str, using: str
) -> FullTextSearch:
    where, params = [f"s.search_vector @@ {TS_QUERY}"], [query]
    if tags:
        sub_sql, sub_params = _with_all_tags(tags).query.sql_with_params()
        where.append(f"s.dataset_id IN ({sub_sql})")
        params.extend(sub_params)
    if licence:
        where.append("s.licence = %s")
        params.append(licence)
    if price_min is not None:
        where.append("s.price >= %s")
        params.append(price_min)
    if price_max is not None:
        where.append("s.price <= %s")
        params.append(price_max)
    return FullTextSearch(
        where=" AND ".join(where),
        params=tuple(params),
        order_by=SEARCH_ORDER[sort],
        order_params=(query,) if sort == "relevance" else (),
        using=using,
    )


# What a catalogue list row shows (marketplace.api.serializers.DatasetListSerializer), read as plain
# values in one query. The model path reads every column, builds a Dataset and its owner per row,
# prefetches the tags through a related manager per row and parses the JSON schemas; for a page of
# 20 that was most of the API's time per request.
LISTING_ROW_FIELDS = (
    "id",
    "title",
    "description",
    "licence",
    "price",
    "price_token",
    "epsilon_total",
    "epsilon_per_job",
    "delta",
    "delta_total",
    "status",
    "file_format",
    "commitment",
    "size_bucket",
    "public_row_count",
    "holdout_fraction",
    "created_at",
    "listed_at",
    "updated_at",
)


def _listing_row_values(queryset: QuerySet[Dataset]) -> QuerySet:
    table = Dataset._meta.db_table
    return (
        queryset.select_related(None)
        .prefetch_related(None)
        .values(
            *LISTING_ROW_FIELDS,
            owner_username=F("owner__username"),
            # Unordered: the serializer sorts the names in Python, as for model rows (a database
            # collation may order them differently).
            tag_names=ArraySubquery(Tag.objects.filter(datasets=OuterRef("pk")).order_by().values("name")),
            # What `declared_schema is not None` gives on a loaded row: SQL NULL and JSON null are None.
            schema_confirmed=RawSQL(
                f'("{table}"."declared_schema" IS NOT NULL AND jsonb_typeof("{table}"."declared_schema") <> %s)',
                ("null",),
                output_field=BooleanField(),
            ),
            has_uploaded_mock=ExpressionWrapper(~Q(mock_storage_name=""), output_field=BooleanField()),
        )
    )


def listing_rows(
    queryset: QuerySet[Dataset], *, ids: list[int] | None = None, offset: int = 0, limit: int = 20
) -> list[dict]:
    """One catalogue page as plain rows (PostgreSQL; see ``LISTING_ROW_FIELDS``): the queryset's
    ``[offset:offset + limit]``, or, with ``ids`` (a full-text page read from the search table),
    those datasets in that order. Each row has the listed fields' raw values plus
    ``owner_username``, ``tag_names`` (unordered), ``schema_confirmed`` and ``has_uploaded_mock``."""
    if ids is None:
        return list(_listing_row_values(queryset)[offset : offset + limit])
    by_id = {row["id"]: row for row in _listing_row_values(queryset.model._default_manager.filter(pk__in=ids))}
    return [by_id[pk] for pk in ids if pk in by_id]


def catalogue_search(
    *,
    query: str = "",
    tags: Iterable[str] = (),
    licence: str | None = None,
    price_min: Decimal | None = None,
    price_max: Decimal | None = None,
    sort: str | None = None,
) -> CatalogueSearch:
    """Listed datasets matching the query and filters.

    On PostgreSQL the query is full-text (``websearch_to_tsquery`` over the weighted tsvector of
    title and description in the search table, GIN-indexed, ranked with ``ts_rank``); on SQLite
    every word must appear in the title, description or tags. Tags combine with AND. ``sort``
    defaults to relevance with a query and newest without. The result says how to read a page and
    its total (see ``CatalogueSearch``); marketplace.api.pagination pages it."""
    query = (query or "").strip()[:200]
    sort = sort or ("relevance" if query else "newest")
    if sort not in SORTS:
        raise InvalidInput(f"Unknown sort '{sort}'; use one of {', '.join(SORTS)}.", code="invalid_sort")
    if licence and licence not in Licence.values:
        raise InvalidInput(
            f"Unknown licence '{licence}'; use one of {', '.join(Licence.values)}.", code="invalid_licence"
        )
    for name, bound in (("price_min", price_min), ("price_max", price_max)):
        # Prices are stored below 10^12 (services.datasets); a bound like 1e400 is a typo, not a filter.
        if bound is not None and not (Decimal(0) <= Decimal(bound) < MAX_PRICE_BOUND):
            raise InvalidInput(f"{name} must be a price from 0 to below {MAX_PRICE_BOUND:,}.", code=f"invalid_{name}")
    if price_min is not None and price_max is not None and price_min > price_max:
        raise InvalidInput("price_min must not be above price_max.", code="invalid_price_range")
    if "\x00" in query or any("\x00" in str(tag) for tag in tags):
        # PostgreSQL cannot hold a NUL in a text value: the query would fail, not just match nothing.
        raise InvalidInput("The search contains a NUL character.", code="invalid_query")
    tags = list(dict.fromkeys(tag for tag in (str(tag).strip().lower() for tag in tags) if tag))
    if len(tags) > MAX_FILTER_TAGS:
        raise InvalidInput(
            f"Filter by at most {MAX_FILTER_TAGS} tags ({len(tags)} given).",
            code="too_many_tags",
            extra={"max_tags": MAX_FILTER_TAGS},
        )

    qs = Dataset.objects.filter(status=Dataset.Status.LISTED).select_related("owner").prefetch_related("tags")
    full_text = bool(query) and _uses_fulltext()
    ranked = False
    if query:
        if full_text:
            qs = qs.filter(
                pk__in=RawSQL(f"SELECT dataset_id FROM {SEARCH_TABLE} WHERE search_vector @@ {TS_QUERY}", (query,))  # noqa: S608
            )
            if sort == "relevance":
                qs = qs.annotate(
                    rank=RawSQL(
                        f"SELECT ts_rank(s.search_vector, {TS_QUERY}) FROM {SEARCH_TABLE} s"  # noqa: S608
                        f" WHERE s.dataset_id = {Dataset._meta.db_table}.id",
                        (query,),
                    )
                )
                ranked = True
        else:
            for word in query.split()[:10]:
                qs = qs.filter(Q(title__icontains=word) | Q(description__icontains=word) | Q(tags__name=word.lower()))
            qs = qs.distinct()
    if tags:
        qs = qs.filter(pk__in=_with_all_tags(tags))
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
    return CatalogueSearch(
        queryset=qs,
        full_text=(
            _full_text_search(
                query=query,
                tags=tags,
                licence=licence,
                price_min=price_min,
                price_max=price_max,
                sort=sort,
                using=qs.db,
            )
            if full_text
            else None
        ),
        # Everything the number of matches depends on (not the sort): the total is cached under
        # this key without compiling the queryset's SQL for one.
        count_cache_key="count:catalogue:"
        + hashlib.sha256(repr((qs.db, query, tags, licence, price_min, price_max)).encode()).hexdigest(),
        count_cache_seconds=settings.CATALOGUE_COUNT_CACHE_SECONDS,
        plain_rows=connections[qs.db].vendor == "postgresql",
    )


def listing_search(**filters) -> QuerySet[Dataset]:
    """The listed datasets ``catalogue_search`` finds, as a queryset in its order (for callers that
    want every match or model rows; pages go through ``catalogue_search``)."""
    return catalogue_search(**filters).queryset


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
