"""common.tasks.enqueue: a service names a task instead of importing it, with the same timing."""

from __future__ import annotations

import pytest
from django.db import transaction

from common.tasks import UnknownTask, enqueue, task_named
from marketplace import tasks as marketplace_tasks


def test_a_misspelt_task_name_fails_at_once():
    with pytest.raises(UnknownTask, match="notify_nobody_task"):
        enqueue("marketplace.tasks.notify_nobody_task", 1)
    with pytest.raises(UnknownTask, match="no_such_app"):
        enqueue("no_such_app.tasks.anything", 1)


def test_the_name_finds_the_task_its_module_defines():
    assert (
        task_named("marketplace.tasks.dataset_validate_task")
        is marketplace_tasks.dataset_validate_task._get_current_object()
    )


@pytest.mark.django_db(transaction=True)
def test_on_commit_sends_after_the_commit_and_never_on_a_rollback(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(marketplace_tasks.dataset_validate_task, "delay", sent.append)
    with transaction.atomic():
        enqueue("marketplace.tasks.dataset_validate_task", 1)
        assert sent == []  # the worker must not look for a row that is not committed yet
    assert sent == [1]
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("marketplace.tasks.dataset_validate_task", 2)
        raise RuntimeError("rolled back")
    assert sent == [1]
    with transaction.atomic():
        enqueue("marketplace.tasks.dataset_validate_task", 3, on_commit=False)
        assert sent == [1, 3]


@pytest.mark.django_db
def test_eager_mode_runs_the_task_in_process(settings, monkeypatch):
    # send_task would only publish to a broker; the task's own apply_async honours eager mode.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    ran: list[str] = []
    monkeypatch.setattr(marketplace_tasks.datasets, "storage_orphans_sweep", lambda: ran.append("swept") or [])
    enqueue("marketplace.tasks.storage_orphans_sweep_task", countdown=5, on_commit=False)
    enqueue("marketplace.tasks.storage_orphans_sweep_task", on_commit=False)
    assert ran == ["swept", "swept"]
