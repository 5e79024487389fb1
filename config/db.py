"""PostgreSQL's ``statement_timeout`` on the web server's database connections.

A request's statement that runs past ``DATABASE_STATEMENT_TIMEOUT_MS`` is cancelled by the
server (``QueryCanceled``) and answered with a 503 (``marketplace.middleware.QueryTimeoutMiddleware``),
so one costly query cannot hold a worker thread and a connection for a minute. Only the web
server turns it on (``config/wsgi.py``, ``config/asgi.py``): Celery workers, migrations and
management commands legitimately run long statements."""

from __future__ import annotations

from django.conf import settings
from django.db.backends.signals import connection_created


def _statement_timeout_set(sender, connection, **kwargs) -> None:
    timeout_ms = int(settings.DATABASE_STATEMENT_TIMEOUT_MS or 0)
    if connection.vendor != "postgresql" or timeout_ms <= 0:
        return
    with connection.cursor() as cursor:
        # A session setting: it holds for every statement on this (possibly kept) connection.
        cursor.execute("SET statement_timeout = %s", [timeout_ms])


def web_statement_timeout_enable() -> None:
    """Give every database connection this process opens from now on the statement timeout."""
    connection_created.connect(_statement_timeout_set, dispatch_uid="web-statement-timeout")
