"""The API's one pagination: page numbers, ``page_size`` up to 100. Lists that page something
other than a queryset subclass it (marketplace.api.pagination's catalogue pages)."""

from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """Page-number pagination."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
