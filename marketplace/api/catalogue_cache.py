"""Catalogue pages from memory, never older than the committed catalogue (PostgreSQL).

The public catalogue list (``GET /api/v1/datasets/``) answers the same bytes to everyone for the
same query string until a listed dataset, its tags or its owner's name changes. Migration 0006
keeps a generation number that every such write changes in its own transaction; a page is stored
in this process under (generation, query string) and served while the generation read at the
start of the request is the same. The generation is read before the page's rows, so a stored
page is at least as new as its generation, and a later write moves every reader to a new key.
Throttling, authentication and content negotiation still run on every request; only JSON
answers are stored. ``CATALOGUE_PAGE_CACHE_SIZE`` pages per process (0 turns it off); other
databases have no generation and no page cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection

_lock = threading.Lock()
_pages: OrderedDict[tuple[int, str], bytes] = OrderedDict()


def generation() -> int | None:
    """The committed catalogue's generation, or None when pages are not cached here."""
    if connection.vendor != "postgresql" or not settings.CATALOGUE_PAGE_CACHE_SIZE:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM marketplace_cataloguegeneration WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else None


def page_key(query: dict[str, list[str]]) -> str:
    """The query string in a canonical order, so ``?a=1&b=2`` and ``?b=2&a=1`` share a page."""
    return urlencode(sorted((name, value) for name, values in query.items() for value in values))


def get(gen: int, key: str) -> bytes | None:
    with _lock:
        body = _pages.get((gen, key))
        if body is not None:
            _pages.move_to_end((gen, key))
        return body


def put(gen: int, key: str, body: bytes) -> None:
    with _lock:
        _pages[(gen, key)] = body
        _pages.move_to_end((gen, key))
        while len(_pages) > settings.CATALOGUE_PAGE_CACHE_SIZE:
            _pages.popitem(last=False)


def clear() -> None:
    with _lock:
        _pages.clear()
