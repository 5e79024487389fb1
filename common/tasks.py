"""Queue a Celery task by its registered name.

Services own the writes and tasks call services, so a service that queues follow-up work must not
import its app's ``tasks`` module (that would close an import circle, even inside a function). It
names the task instead, the way Zulip's actions publish to a queue by name."""

from __future__ import annotations

import importlib
from typing import Any

from celery import current_app
from celery.app.task import Task
from django.db import transaction


class UnknownTask(LookupError):
    """The name matches no registered task: a typo or a task that was renamed. Fails loudly,
    because a silently dropped task is work that never happens."""


def task_named(name: str) -> Task:
    """The registered task called ``name`` (e.g. ``"chain.tasks.transaction_send_task"``).

    The task's module is imported by name on first use when no worker has loaded it yet (a web
    process or a test), which keeps the caller free of any static import of it."""
    tasks = current_app.tasks
    if name not in tasks:
        module, _, _ = name.rpartition(".")
        if module:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise UnknownTask(f"No task module for {name!r}: {exc}") from exc
    try:
        return tasks[name]
    except KeyError:
        raise UnknownTask(f"No Celery task is registered as {name!r}.") from None


def enqueue(name: str, *args: Any, countdown: float | None = None, on_commit: bool = True) -> None:
    """Queue the task ``name`` with ``args``.

    With ``on_commit`` (the default) it is sent once the current transaction commits, so a worker
    never looks for a row that is not there yet (and nothing is sent on a rollback); outside a
    transaction it is sent at once. Without it, it is sent now and a broker error reaches the caller,
    for callers that log it and rely on a resume sweep.

    The task is looked up and sent with ``delay``/``apply_async`` rather than ``send_task``: those
    honour ``CELERY_TASK_ALWAYS_EAGER`` (tests run tasks in-process), ``send_task`` does not. An
    unknown name raises :class:`UnknownTask` at once, before any commit."""
    task = task_named(name)

    def send() -> None:
        if countdown is None:
            task.delay(*args)
        else:
            task.apply_async(args=args, countdown=countdown)

    if on_commit:
        transaction.on_commit(send)
    else:
        send()
