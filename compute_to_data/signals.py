"""Signals other parts listen to (notifications, live updates)."""

from django.dispatch import Signal

# Sent after a job's status change commits: kwargs ``job_id``, ``status`` and ``previous``.
job_status_changed = Signal()
