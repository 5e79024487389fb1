from django.core.paginator import Page, Paginator
from django.db.models import Count, Window
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """Page-number pagination. For querysets marked ``count_in_page_query`` (full-text searches,
    whose matches must all be visited to rank them anyway) one narrow query returns the page's ids
    and the total (``COUNT(*) OVER ()``), and a second fetches those rows by primary key: one pass
    over the matches instead of two, and no wide rows carried through the sort."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

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
        narrow = (
            queryset.select_related(None)
            .prefetch_related(None)
            .annotate(total_matches=Window(Count("pk")))
            .values_list("pk", "total_matches")[offset : offset + page_size]
        )
        id_total = list(narrow)
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
