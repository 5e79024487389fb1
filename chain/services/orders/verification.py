"""Verifying an order against the chain: an order is accepted only after the chain says so (the
transaction is mined under ``CHAIN_CONFIRMATIONS`` blocks, its ``OrderStarted`` event comes from this
dataset's datatoken, the consumer is one of the buyer's wallets, (epsilon, delta) and the algorithm
hash match the request, the order id is the nonce of an order ticket the operator issued to this
buyer for exactly this order, and the on-chain order id was never accepted before)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from chain import client
from chain.models import Order, OrderTicket
from chain.services.orders.settlement import listing_budget_sync, order_chain_mismatch, order_vanish
from chain.services.outbox import (
    confirmed_receipt,
    poll,
)
from chain.services.transitions import order_transition
from chain.services.wallets import user_addresses
from chain.units import delta_to_units, epsilon_to_units, units_to_epsilon
from chain.wrappers import Datatoken


def order_reject(order: Order, reason: str) -> Order:
    return order_transition(order, Order.Status.REJECTED, error=reason[:2000])


def order_accept(order: Order, receipt: Any) -> Order:
    """Accept ``order`` from a mined receipt, or reject it saying which check failed."""
    if receipt["status"] != 1:
        return order_reject(order, "The order transaction reverted on chain.")
    listing = order.listing
    events = Datatoken(client.web3(), listing.datatoken_address).order_started_events(receipt)
    if not events:
        return order_reject(order, "The transaction placed no order on this dataset's datatoken.")
    event = events[0]
    consumer = event["consumer"]
    if order.buyer is None or consumer not in user_addresses(user=order.buyer):
        return order_reject(order, f"The order's consumer {consumer} is not one of your wallets.")
    mismatches = []
    if int(event["epsilon"]) != epsilon_to_units(order.epsilon):
        mismatches.append(f"epsilon {units_to_epsilon(event['epsilon'])} on chain, {order.epsilon} requested")
    if int(event["delta"]) != delta_to_units(order.delta):
        mismatches.append("delta differs from the request")
    if event["algorithmHash"].lower() != order.algorithm_hash.lower():
        mismatches.append("the algorithm hash differs from the request")
    if mismatches:
        return order_reject(order, "The on-chain order does not match the request: " + "; ".join(mismatches) + ".")
    order_id = int(event["orderId"])
    ticket = OrderTicket.objects.filter(listing=listing, nonce=order_id).first()
    refusal = _ticket_mismatch(order, ticket, event)
    if refusal:
        return order_reject(order, refusal)
    assert ticket is not None  # _ticket_mismatch refuses a missing one
    accepted = {
        "consumer_address": consumer,
        "chain_order_id": order_id,
        "amount_units": int(event["amount"]),
        "deadline": int(event["deadline"]),
        "ticket_expires_at": ticket.expires_at,
        "block_number": receipt["blockNumber"],
        "confirmed_at": timezone.now(),
    }
    previous = order.status
    try:
        with transaction.atomic():
            order_transition(order, Order.Status.CONFIRMED, **accepted)
    except IntegrityError:
        order.status = previous  # the savepoint rolled the move (and its signal) back
        holder = (
            Order.objects.filter(listing=listing, chain_order_id=accepted["chain_order_id"])
            .exclude(pk=order.pk)
            .first()
        )
        # After a rollback the chain reuses ids: an order that holds this id but is no longer on
        # chain gives it up (vanished) rather than turning this buyer's payment away.
        if holder is None or not order_chain_mismatch(order=holder):
            order.refresh_from_db()
            return order_reject(order, "This on-chain order was already used for another job.")
        order_vanish(order=holder, why="the chain reused its id for another order")
        with transaction.atomic():
            order_transition(order, Order.Status.CONFIRMED, **accepted)
    listing_budget_sync(listing)
    return order


def _ticket_mismatch(order: Order, ticket: OrderTicket | None, event: dict[str, Any]) -> str:
    """Why the mined ``OrderStarted`` is not the order the operator's ticket allowed this buyer, or "".
    The chain already checked the signature; this ties the order to the ticket this marketplace issued."""
    order_id = int(event["orderId"])
    if ticket is None:
        return f"On-chain order {order_id} carries no order ticket this marketplace issued."
    if order.chain_order_id is not None and int(order.chain_order_id) != order_id:
        return f"The transaction placed on-chain order {order_id}, not the ticketed order {order.chain_order_id}."
    if ticket.buyer_id != order.buyer_id or ticket.buyer_address.lower() != str(event["consumer"]).lower():
        return f"The order ticket of on-chain order {order_id} was issued to another buyer."
    issued = (ticket.epsilon_units, ticket.delta_units, ticket.algorithm_hash.lower(), int(ticket.price_units))
    mined = (int(event["epsilon"]), int(event["delta"]), str(event["algorithmHash"]).lower(), int(event["amount"]))
    if issued != mined:
        return f"On-chain order {order_id} does not match the order ticket issued for it."
    return ""


def order_verify(order_id: int, *, max_wait_seconds: float = 20) -> bool:
    """Verify an order whose transaction the buyer sent. True once decided (confirmed or rejected)."""

    def decided() -> bool:
        order = Order.objects.get(pk=order_id)
        if order.status != Order.Status.CONFIRMING:
            return True
        receipt = confirmed_receipt(order.tx_hash)
        if receipt is None:
            if order.created_at < timezone.now() - timedelta(hours=1):
                order_reject(order, "The transaction was not confirmed on chain within an hour.")
                return True
            return False
        with transaction.atomic():
            locked = Order.objects.select_for_update(of=("self",)).select_related("listing", "buyer").get(pk=order_id)
            if locked.status == Order.Status.CONFIRMING:
                order_accept(locked, receipt)
        return True

    return poll(decided, max_wait_seconds=max_wait_seconds)
