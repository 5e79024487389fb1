"""Signal receivers: a job follows its order."""

from __future__ import annotations

from typing import Any


def order_status_changed(sender: Any, *, order_id: int, status: str, **kwargs: Any) -> None:
    from compute_to_data.services.jobs import job_follow_order

    job_follow_order(order_id=order_id)
