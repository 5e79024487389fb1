"""The one door for every ``Order.status`` and ``ChainListing.state`` change, the way
``compute_to_data.services.jobs.job_transition`` is for jobs: the move is checked against the model's
``TRANSITIONS`` map, the row saved, and one signal sent once the change commits. Callers hold the row
lock (SELECT ... FOR UPDATE) inside ``transaction.atomic``."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from chain.models import ChainListing, Order
from chain.signals import listing_state_changed, order_status_changed
from marketplace.errors import IllegalTransition


def order_transition(order: Order, to: str, *, save: bool = True, **fields: Any) -> Order:
    """Move ``order`` to ``to`` with ``fields`` or raise ``IllegalTransition``.

    ``save=False`` leaves the write to the caller (the indexer writes its orders in one bulk update
    in the same transaction); the signal is sent either way. Staying in the same status is no
    transition: the fields are saved and nothing is announced."""
    previous = order.status
    if to != previous and to not in Order.TRANSITIONS.get(previous, frozenset()):
        raise IllegalTransition(f"A {order.get_status_display().lower()} order cannot become {to}.")
    order.status = to
    for name, value in fields.items():
        setattr(order, name, value)
    if save:
        order.save(update_fields=sorted({"status", *fields}))
    if to != previous:
        order_id = order.pk
        transaction.on_commit(
            lambda: order_status_changed.send(sender=Order, order_id=order_id, status=to, previous=previous)
        )
    return order


def listing_transition(listing: ChainListing, to: str, *, save: bool = True, **fields: Any) -> ChainListing:
    """Move ``listing`` to ``to`` with ``fields`` or raise ``IllegalTransition`` (as ``order_transition``)."""
    previous = listing.state
    if to != previous and to not in ChainListing.TRANSITIONS.get(previous, frozenset()):
        raise IllegalTransition(f"A {listing.get_state_display().lower()} listing cannot become {to}.")
    listing.state = to
    for name, value in fields.items():
        setattr(listing, name, value)
    if save:
        listing.save(update_fields=sorted({"state", *fields}))
    if to != previous:
        listing_id, dataset_id = listing.pk, listing.dataset_id
        transaction.on_commit(
            lambda: listing_state_changed.send(
                sender=ChainListing, listing_id=listing_id, dataset_id=dataset_id, state=to, previous=previous
            )
        )
    return listing
