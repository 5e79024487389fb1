from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.views import APIView

from common.pagination import StandardPagination
from marketplace.selectors.catalog import CatalogueSearch

# No catalogue has this many rows; a page beyond it has none.
MAX_OFFSET = 2**62


class CataloguePaginator(Paginator):
    """Pages a ``CatalogueSearch`` (marketplace.selectors.catalog): its total may be a few seconds
    stale (``count_cache_seconds``) or already known (``total``), but a page's rows are always
    live and never trimmed to that total. ``plain``: rows as ``listing_rows`` gives them (the API's
    DatasetListSerializer reads those), else ``Dataset`` instances (the web catalogue)."""

    def __init__(
        self, search: CatalogueSearch, per_page: int, *, plain: bool = False, total: int | None = None
    ) -> None:
        # The object list is the matches' queryset; count and page read the search instead.
        super().__init__(search.queryset, per_page)
        self.search, self.plain, self._total = search, plain, total

    @cached_property
    def count(self) -> int:
        return self._total if self._total is not None else self.search.total()

    def page(self, number: int | str) -> Page[Any]:
        number = self.validate_number(number)
        rows = self.search.page(offset=(number - 1) * self.per_page, limit=self.per_page, plain=self.plain).rows
        return Page(rows, number, self)


class CatalogueRowsPaginator(CataloguePaginator):
    """The API's: catalogue pages as plain rows where the database allows it."""

    def __init__(self, search: CatalogueSearch, per_page: int) -> None:
        super().__init__(search, per_page, plain=True)


class CataloguePagination(StandardPagination):
    """The catalogue list's pagination: same parameters, answers and errors as StandardPagination,
    over a ``CatalogueSearch``. A full-text search pages on the narrow search table: one query
    returns the page's ids, with the total (``COUNT(*) OVER ()``) unless a cached total is at hand,
    and a second fetches those rows by primary key, so matches are ranked without ever reading the
    wide dataset rows. Other searches page like any list, as plain rows."""

    django_paginator_class = CatalogueRowsPaginator

    def paginate_queryset(
        self,
        queryset: QuerySet[Any] | Sequence[Any] | CatalogueSearch,
        request: Request,
        view: APIView | None = None,
    ) -> list[Any] | None:
        if not isinstance(queryset, CatalogueSearch):
            raise TypeError(f"CataloguePagination pages a CatalogueSearch, not a {type(queryset).__name__}")
        search = queryset
        if search.full_text is None:
            # PageNumberPagination hands the search to its django_paginator_class, which pages it.
            return super().paginate_queryset(search, request, view)  # type: ignore[arg-type]  # CatalogueRowsPaginator
        page_size = self.get_page_size(request)
        if page_size is None:  # StandardPagination always has one
            raise ImproperlyConfigured("CataloguePagination needs a page_size")
        raw_number = request.query_params.get(self.page_query_param) or 1
        try:
            number = int(raw_number)
            if number < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise NotFound(f"Invalid page '{raw_number}'.")
        offset = (number - 1) * page_size
        if offset > MAX_OFFSET:
            # PostgreSQL's OFFSET is a bigint: a page number past it would be a 500, not a 404.
            raise NotFound(f"Invalid page '{raw_number}': that page contains no results.")
        total = search.cached_total()
        if total is None:
            found = search.page(offset=offset, limit=page_size, plain=True, with_total=True)
            if found.total is not None:
                search.remember_total(found.total)
            total = found.total
        else:
            found = search.page(offset=offset, limit=page_size, plain=True)
        if not found.rows and number > 1:
            raise NotFound(f"Invalid page '{raw_number}': that page contains no results.")
        self.page = Page(found.rows, number, CataloguePaginator(search, page_size, plain=True, total=total or 0))
        self.request = request
        return found.rows
