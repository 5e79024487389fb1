"""Signal receivers: a job's status change becomes webhook deliveries."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def job_status_changed(sender: Any, *, job_id: int, status: str, previous: str, **kwargs: Any) -> None:
    """Runs after the transition committed. A failure here costs the webhook (logged), never the
    job: the caller is the job's own lifecycle."""
    from integrations.services.webhooks import job_event_dispatch

    try:
        job_event_dispatch(job_id=job_id, status=status, previous=previous)
    except Exception:
        logger.exception("job %s: could not dispatch the %s webhook event", job_id, status)
