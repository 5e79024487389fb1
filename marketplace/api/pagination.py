import hashlib

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db import connections
from django.utils.functional import cached_property
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination


class CachedCountPaginator(Paginator):
    """Caches COUNT(*) for querysets that allow it (``count_cache_seconds``): a catalogue total a
    few seconds stale is fine, and counting tens of thousands of listings on every page is not."""

    @cached_property
    def count(self) -> int:
        seconds = getattr(self.object_list, "count_cache_seconds", 0)
        if not seconds:
            return super().count
        sql, params = self.object_list.query.sql_with_params()
        key = "count:" + hashlib.sha256(repr((sql, params)).encode()).hexdigest()
        total = cache.get(key)
        if total is None:
            total = self.object_list.count()
            cache.set(key, total, seconds)
        return total

    def page(self, number):
        # Never trim a page to a (possibly stale) total: the rows themselves are always live.
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)


class StandardPagination(PageNumberPagination):
    """Page-number pagination. For querysets marked ``count_in_page_query`` (full-text searches,
    whose matches must all be visited to rank them anyway) one narrow query returns the page's ids
    and the total (``COUNT(*) OVER ()``), and a second fetches those rows by primary key: one pass
    over the matches instead of two, and no wide rows carried through the sort."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    django_paginator_class = CachedCountPaginator

    def paginate_queryset(self, queryset, request, view=None):
        if not getattr(queryset, "count_in_page_query", False):
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
        # The inner query sorts only (id, sort keys); OFFSET 0 keeps PostgreSQL from flattening it,
        # so the window buffers ids instead of whole rows.
        inner = queryset.select_related(None).prefetch_related(None).values_list("pk", flat=True)
        sql, params = inner.query.sql_with_params()
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(
                f"SELECT ordered.id, COUNT(*) OVER () FROM ({sql} OFFSET 0) AS ordered(id) LIMIT %s OFFSET %s",  # noqa: S608
                (*params, page_size, offset),
            )
            id_total = cursor.fetchall()
        if not id_total and number > 1:
            raise NotFound(f"Invalid page '{raw_number}': that page contains no results.")
        ids = [pk for pk, _ in id_total]
        fetch = queryset.model._default_manager.filter(pk__in=ids).prefetch_related(*queryset._prefetch_related_lookups)
        if queryset.query.select_related:
            fetch = fetch.select_related(*_select_related_names(queryset.query.select_related))
        by_id = {obj.pk: obj for obj in fetch}
        rows = [by_id[pk] for pk in ids if pk in by_id]
        paginator = Paginator([], page_size)
        paginator.__dict__["count"] = id_total[0][1] if id_total else 0
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
