import hashlib

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.utils.functional import cached_property
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination


def _count_key(sql: str, params) -> str:
    return "count:" + hashlib.sha256(repr((sql, params)).encode()).hexdigest()


def _rows_in_order(queryset, ids: list[int]) -> list:
    """The rows with these ids, in this order, with the queryset's related data."""
    fetch = queryset.model._default_manager.filter(pk__in=ids).prefetch_related(*queryset._prefetch_related_lookups)
    if queryset.query.select_related:
        fetch = fetch.select_related(*_select_related_names(queryset.query.select_related))
    by_id = {obj.pk: obj for obj in fetch}
    return [by_id[pk] for pk in ids if pk in by_id]


class CachedCountPaginator(Paginator):
    """Caches COUNT(*) for querysets that allow it (``count_cache_seconds``): a catalogue total a
    few seconds stale is fine, and counting tens of thousands of listings on every page is not.
    Full-text searches (``full_text_search``) are counted and paged on the narrow search table."""

    @cached_property
    def count(self) -> int:
        seconds = getattr(self.object_list, "count_cache_seconds", 0)
        search = getattr(self.object_list, "full_text_search", None)
        if search is not None:
            if not seconds:
                return search.count()
            counter, key = search.count, _count_key(*search.count_sql())
        elif seconds:
            # A queryset that names what its total depends on spares compiling its SQL for the key.
            counter = self.object_list.count
            key = getattr(self.object_list, "count_cache_key", None) or _count_key(
                *self.object_list.query.sql_with_params()
            )
        else:
            return super().count
        total = cache.get(key)
        if total is None:
            total = counter()
            cache.set(key, total, seconds)
        return total

    def page(self, number):
        # Never trim a page to a (possibly stale) total: the rows themselves are always live.
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        search = getattr(self.object_list, "full_text_search", None)
        if search is None:
            return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)
        ids, _ = search.page(limit=self.per_page, offset=bottom, with_total=False)
        return self._get_page(_rows_in_order(self.object_list, ids), number, self)


class ListingRowsPaginator(CachedCountPaginator):
    """The API's paginator: a queryset that offers ``listing_rows`` (the catalogue, see
    marketplace.selectors.catalog) is paged as plain rows for DatasetListSerializer rather than
    model instances. Totals, page numbers and errors are the parent's."""

    def page(self, number):
        rows = getattr(self.object_list, "listing_rows", None)
        if rows is None or getattr(self.object_list, "full_text_search", None) is not None:
            return super().page(number)
        number = self.validate_number(number)
        return self._get_page(
            rows(self.object_list, offset=(number - 1) * self.per_page, limit=self.per_page), number, self
        )


class StandardPagination(PageNumberPagination):
    """Page-number pagination. Full-text searches (querysets with ``full_text_search``) page on the
    narrow search table: one query returns the page's ids, with the total (``COUNT(*) OVER ()``)
    unless a cached total is at hand (``count_cache_seconds``, shared with the paginator above),
    and a second fetches those rows by primary key. Matches are ranked without ever reading the
    wide dataset rows. Catalogue querysets (``listing_rows``) come back as plain rows."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    django_paginator_class = ListingRowsPaginator

    def paginate_queryset(self, queryset, request, view=None):
        search = getattr(queryset, "full_text_search", None)
        if search is None:
            return super().paginate_queryset(queryset, request, view)
        page_size = self.get_page_size(request)
        raw_number = request.query_params.get(self.page_query_param) or 1
        try:
            number = int(raw_number)
            if number < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise NotFound(f"Invalid page '{raw_number}'.")
        offset = (number - 1) * page_size
        seconds = getattr(queryset, "count_cache_seconds", 0)
        key = _count_key(*search.count_sql())
        total = cache.get(key) if seconds else None
        if total is None:
            ids, total = search.page(limit=page_size, offset=offset, with_total=True)
            if seconds and total is not None:
                cache.set(key, total, seconds)
        else:
            ids, _ = search.page(limit=page_size, offset=offset, with_total=False)
        if not ids and number > 1:
            raise NotFound(f"Invalid page '{raw_number}': that page contains no results.")
        listing_rows = getattr(queryset, "listing_rows", None)
        rows = listing_rows(queryset, ids=ids) if listing_rows else _rows_in_order(queryset, ids)
        paginator = Paginator([], page_size)
        paginator.__dict__["count"] = total or 0
        self.page = Page(rows, number, paginator)
        self.request = request
        return rows


def _select_related_names(spec, prefix: str = "") -> list[str]:
    if spec is True:
        return []
    names: list[str] = []
    for name, nested in spec.items():
        path = f"{prefix}{name}"
        names.append(path)
        names.extend(_select_related_names(nested, f"{path}__"))
    return names
