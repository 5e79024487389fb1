"""Signal receivers: a job follows its order; the end of a job is mailed to its buyer; a starting
worker reaps the jobs of the dead workers of its host."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready
from django.db import connection
from django.dispatch import receiver

from common.tasks import enqueue
from compute_to_data.signals import job_status_changed

logger = logging.getLogger(__name__)


def order_status_changed(sender: Any, *, order_id: int, status: str, **kwargs: Any) -> None:
    from compute_to_data.services.jobs import job_follow_order

    job_follow_order(order_id=order_id)


@receiver(job_status_changed, dispatch_uid="compute-job-ended-email")
def job_ended_email(sender: Any, *, job_id: int, status: str, **kwargs: Any) -> None:
    """Queue the e-mail about a finished, failed or rejected job. Runs after the transition
    committed; a broker that is down costs the e-mail, never the job."""
    from marketplace.services.notifications import JOB_NOTIFY_STATUSES

    if status not in JOB_NOTIFY_STATUSES:
        return
    try:
        enqueue("marketplace.tasks.notify_job_ended_task", job_id, status, on_commit=False)
    except Exception:
        logger.exception("job %s: could not queue the %s e-mail", job_id, status)


@worker_ready.connect(dispatch_uid="compute-reap-on-worker-start")
def reap_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """A worker that (re)starts deals at once with the jobs of this host's dead workers (its own
    previous life, SIGKILLed): each runs again from the start instead of waiting out the heartbeat
    timeout. A database that is down costs only this early pass; beat's reaper runs every 15 s."""
    from compute_to_data.services.execution import jobs_reap

    try:
        counts = jobs_reap()
        if any(counts.values()):
            logger.warning("worker start: jobs of dead workers: %s", counts)
    except Exception:
        logger.exception("worker start: could not reap the jobs of dead workers")
    finally:
        connection.close()  # not inherited by the pool processes forked later
