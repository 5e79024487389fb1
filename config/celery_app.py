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


@worker_init.connect
def _sandbox_preflight(**kwargs) -> None:
    """The worker says at start whether it can run compute sandboxes. It still starts without one
    (it has chain work to do); compute jobs it takes then fail before touching data, with the
    reason, and are refunded."""
    import logging

    from compute_to_data import sandbox
    from compute_to_data.services.execution import sandbox_backend, sandbox_config

    try:
        sandbox_backend().preflight(sandbox_config())
    except sandbox.SandboxUnavailable as exc:
        logging.getLogger("compute_to_data").error("No compute sandbox on this worker: %s", exc)
