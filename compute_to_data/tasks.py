"""Celery tasks of compute-to-data: they take ids, call one service, and are safe to run twice.

``job_run_task`` runs on the ``compute`` queue with late acknowledgement: if the worker dies
mid-job the message is delivered again. The claim in ``job_run`` (queued -> provisioning under a
row lock) makes a second delivery a no-op while the job's worker lives; once that worker is dead
the delivery takes the job over and runs it again from the start, as the reaper does (see
``execution.jobs_reap``, also run by every worker as it starts)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from chain.client import ChainUnavailable
from chain.services.transactions import TransientChainError

logger = logging.getLogger(__name__)


@shared_task(
    queue="compute",
    acks_late=True,
    reject_on_worker_lost=True,
    # A database that stays away longer than job_run's own retries: the job is still queued.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
    soft_time_limit=settings.COMPUTE_WALL_SECONDS + 120,
    time_limit=settings.COMPUTE_WALL_SECONDS + 180,
)
def job_run_task(job_id: int) -> None:
    from compute_to_data.services.execution import job_run

    job_run(job_id)


@shared_task(
    # InterfaceError too: a connection the database dropped fails again as "already closed", and a
    # settlement that gave up waits for the reaper's two-minute sweep instead of going out at once.
    autoretry_for=(TransientChainError, ChainUnavailable, OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=30,
)
def job_settle_task(job_id: int) -> str:
    from compute_to_data.services.jobs import job_settle

    return job_settle(job_id=job_id)


@shared_task
def jobs_reap_task() -> dict[str, int]:
    from compute_to_data.services.execution import jobs_reap

    counts = jobs_reap()
    if any(counts.values()):
        logger.info("compute reaper: %s", counts)
    return counts
