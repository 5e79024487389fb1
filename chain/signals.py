"""Signals other apps listen to (compute jobs follow their order). Each is sent by one door only
(``chain.services.transitions``), after the change commits."""

from django.dispatch import Signal

# An order's status changed: kwargs ``order_id``, ``status`` (the new one) and ``previous``.
order_status_changed = Signal()
# A listing's state changed: kwargs ``listing_id``, ``dataset_id``, ``state`` (the new one) and ``previous``.
listing_state_changed = Signal()
