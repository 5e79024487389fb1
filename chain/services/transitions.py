"""The one door for every ``Order.status`` and ``ChainListing.state`` change, the way
``compute_to_data.services.jobs.job_transition`` is for jobs: the move is checked against the model's
``TRANSITIONS`` map, the row saved, and one signal sent once the change commits. Callers hold the row
lock (SELECT ... FOR UPDATE) inside ``transaction.atomic``."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from chain.models import ChainListing, Order
from chain.signals import listing_state_changed, order_status_changed
from common.errors import IllegalTransition


def _transition(obj: Any, to: str, *, field: str, transitions: dict, kind: str, save: bool, fields: dict) -> str:
    """The door both status fields go through: check ``transitions``, set ``field`` and ``fields``,
    save them unless ``save=False``; returns the previous value (the caller announces a change)."""
    previous = getattr(obj, field)
    if to != previous and to not in transitions.get(previous, frozenset()):
        shown = getattr(obj, f"get_{field}_display")().lower()
        raise IllegalTransition(f"A {shown} {kind} cannot become {to}.")
    setattr(obj, field, to)
    for name, value in fields.items():
        setattr(obj, name, value)
    if save:
        obj.save(update_fields=sorted({field, *fields}))
    return previous


def order_transition(order: Order, to: str, *, save: bool = True, **fields: Any) -> Order:
    """Move ``order`` to ``to`` with ``fields`` or raise ``IllegalTransition``.

    ``save=False`` leaves the write to the caller (the indexer writes its orders in one bulk update
    in the same transaction); the signal is sent either way. Staying in the same status is no
    transition: the fields are saved and nothing is announced."""
    previous = _transition(
        order, to, field="status", transitions=Order.TRANSITIONS, kind="order", save=save, fields=fields
    )
    if to != previous:
        order_id = order.pk
        transaction.on_commit(
            lambda: order_status_changed.send(sender=Order, order_id=order_id, status=to, previous=previous)
        )
    return order


def listing_transition(listing: ChainListing, to: str, *, save: bool = True, **fields: Any) -> ChainListing:
    """Move ``listing`` to ``to`` with ``fields`` or raise ``IllegalTransition`` (as ``order_transition``)."""
    previous = _transition(
        listing, to, field="state", transitions=ChainListing.TRANSITIONS, kind="listing", save=save, fields=fields
    )
    if to != previous:
        listing_id, dataset_id = listing.pk, listing.dataset_id
        transaction.on_commit(
            lambda: listing_state_changed.send(
                sender=ChainListing, listing_id=listing_id, dataset_id=dataset_id, state=to, previous=previous
            )
        )
    return listing
