"""The Celery application. Configuration comes from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("marketplace")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _chain_preflight(**kwargs) -> None:
    """A wrong chain id or an unreachable RPC stops the worker at start with a clear message."""
    from chain.client import fail_fast_preflight

    fail_fast_preflight("Celery worker")
