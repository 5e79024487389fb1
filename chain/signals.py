"""Signals other apps listen to (compute jobs follow their order)."""

from django.dispatch import Signal

# Sent after an order's status change commits: kwargs ``order_id`` and ``status`` (the new one).
order_status_changed = Signal()
