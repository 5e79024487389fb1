"""Signals other apps listen to. The marketplace core does not import them (the chain imports it)."""

from django.dispatch import Signal

# Sent after a moderation transition commits: kwargs ``dataset_id`` and ``status`` (the new one).
dataset_status_changed = Signal()
