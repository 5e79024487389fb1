"""Signal receivers: a job follows its order; the end of a job is mailed to its buyer."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

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
    from marketplace.tasks import notify_job_ended_task

    if status not in JOB_NOTIFY_STATUSES:
        return
    try:
        notify_job_ended_task.delay(job_id, status)
    except Exception:
        logger.exception("job %s: could not queue the %s e-mail", job_id, status)
