"""Settlement by the operator (compute jobs call these): a receipt or a refund of a confirmed
order, sent only after the order is read back from the chain as it was accepted; a rollback that
dropped the order marks it ``vanished``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from chain import client
from chain.models import ChainListing, ChainTransaction, Order
from chain.services.outbox import (
    SendRefused,
    transaction_enqueue,
)
from chain.services.transitions import order_transition
from chain.units import epsilon_to_units, hash_bytes, units_to_price
from chain.wrappers import Datatoken
from common.errors import Conflict, InvalidInput

logger = logging.getLogger(__name__)


class OrderVanished(Conflict):
    """The chain no longer holds the order as it was accepted (rolled back, or its id reused by
    another order): it is marked ``vanished`` and never settled."""

    code = "order_vanished"


VANISHED_TEXT = (
    "The chain no longer holds this order ({why}): it was rolled back. Nothing was charged for it and "
    "nothing will be settled."
)


def order_chain_mismatch(*, order: Order) -> str:
    """Why the chain does not hold ``order`` as the marketplace accepted it (the same consumer, the
    amount paid and the parameters hash its ``OrderStarted`` committed to, in the same transaction),
    or "" when it does. Raises ``ChainUnavailable`` when the node does not answer (never "vanished"
    for a chain that is merely down)."""
    if order.chain_order_id is None:
        return "it has no on-chain order id"
    order_id = int(order.chain_order_id)
    datatoken = Datatoken(client.web3(), order.listing.datatoken_address)
    held = datatoken.order(order_id)
    if held.status == "none":
        return f"there is no order {order_id} on chain"
    if held.consumer.lower() != order.consumer_address.lower():
        return f"order {order_id} on chain is another wallet's"
    if held.amount != int(order.amount_units):
        return f"order {order_id} on chain paid another amount"
    started = datatoken.order_started_logs(order_id, from_block=client.deployment().deployed_at_block)
    ours = [
        e
        for e in started
        if e["algorithmHash"].lower() == order.algorithm_hash.lower()
        and e["consumer"].lower() == order.consumer_address.lower()
        and int(e["amount"]) == int(order.amount_units)
        and (not order.tx_hash or e["tx_hash"] == order.tx_hash.lower())
    ]
    if not ours:
        return f"order {order_id} on chain committed to other parameters or came from another transaction"
    return ""


def order_vanish(*, order: Order, why: str) -> Order:
    """Mark an order the chain no longer holds as ``vanished`` (from any status but a final
    settlement the chain still shows); its job follows. Safe to call twice."""
    with transaction.atomic():
        locked = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        if locked.status == Order.Status.VANISHED:
            return locked
        logger.warning("Order %s (on-chain id %s) vanished from the chain: %s", locked.pk, locked.chain_order_id, why)
        # Its id is free on chain for the order that holds it now; the text keeps the old one.
        order_transition(
            locked,
            Order.Status.VANISHED,
            error=VANISHED_TEXT.format(why=f"on-chain order {locked.chain_order_id}: {why}")[:2000],
            chain_order_id=None,
        )
    return locked


def order_settlement_undo(*, order: Order) -> Order:
    """The chain dropped the block with ``order``'s receipt or refund (a reorganisation or a
    rollback) but still holds the order: it is confirmed again, and its job settles again."""
    with transaction.atomic():
        locked = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        if locked.status not in (Order.Status.RECEIPTED, Order.Status.REFUNDED):
            return locked
        logger.warning("Order %s: the chain dropped its settlement; it is confirmed again.", locked.pk)
        order_transition(locked, Order.Status.CONFIRMED, receipt=None, epsilon_spent=None, settled_at=None)
    return locked


def order_chain_matches(*, order: Order) -> bool:
    """True when the chain holds the confirmed ``order`` as accepted; else it is marked
    ``vanished`` (and False). Settlement calls this before it sends anything."""
    why = order_chain_mismatch(order=order)
    if why:
        order_vanish(order=order, why=why)
        return False
    return True


def _settleable(order: Order, verb: str) -> tuple[Order, ChainTransaction | None]:
    """The confirmed order locked, and its settlement in flight if any. Call inside ``transaction.atomic``."""
    locked = Order.objects.select_for_update(of=("self",)).select_related("listing").get(pk=order.pk)
    if locked.status != Order.Status.CONFIRMED:
        raise Conflict(f"Only a confirmed order can be {verb}; this one is {locked.status}.", code="not_confirmed")
    in_flight = ChainTransaction.objects.filter(
        order=locked,
        purpose__in=[ChainTransaction.Purpose.RECEIPT, ChainTransaction.Purpose.REFUND],
        status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT],
    ).first()
    return locked, in_flight


def _settle_enqueue(
    order: Order, purpose: str, verb: str, call_data: Callable[[Datatoken, int], str], context: dict | None = None
) -> ChainTransaction:
    """The operator's settlement of a confirmed order (receipt or refund), at most one in flight.
    The order is read back from the chain first (``OrderVanished`` when it is not there as accepted),
    so a rolled-back chain that reused its id never pays or refunds someone else's order.
    ``call_data`` builds the call from the datatoken and the on-chain order id."""
    with transaction.atomic():
        locked, in_flight = _settleable(order, verb)
        if in_flight:
            return in_flight
    # Read outside the row lock (the node may be slow), then checked again under it.
    if not order_chain_matches(order=locked):
        raise OrderVanished(VANISHED_TEXT.format(why="it was not found on chain as accepted"))
    with transaction.atomic():
        locked, in_flight = _settleable(order, verb)
        if in_flight:
            return in_flight
        if locked.chain_order_id is None:  # confirmed orders have one: only vanishing clears it
            raise OrderVanished(VANISHED_TEXT.format(why="it has no on-chain order id"))
        datatoken = Datatoken(client.web3(), locked.listing.datatoken_address)
        return transaction_enqueue(
            purpose=purpose,
            sender=client.operator_account().address,
            to=datatoken.address,
            data=call_data(datatoken, locked.chain_order_id),
            order=locked,
            dataset=locked.dataset,
            context=context,
        )


def order_receipt_record(
    *,
    order: Order,
    dataset_hash: str,
    algorithm_hash_hex: str,
    params_hash: str,
    result_hash: str,
    epsilon_spent: Decimal,
) -> ChainTransaction:
    """Record a finished job's receipt on chain: releases the escrowed payment to the provider and
    the marketplace, and gives back the epsilon the job did not spend."""
    hashes = {
        "dataset_hash": dataset_hash,
        "algorithm_hash": algorithm_hash_hex,
        "params_hash": params_hash,
        "result_hash": result_hash,
    }
    raw = {k: hash_bytes(v, k) for k, v in hashes.items()}
    if Decimal(epsilon_spent) < 0 or Decimal(epsilon_spent) > order.epsilon:
        raise InvalidInput("Epsilon spent must be between 0 and the epsilon ordered.", code="invalid_epsilon")
    return _settle_enqueue(
        order,
        ChainTransaction.Purpose.RECEIPT,
        "settled",
        lambda datatoken, order_id: datatoken.record_receipt_data(
            order_id=order_id,
            dataset_hash=raw["dataset_hash"],
            algorithm_hash=raw["algorithm_hash"],
            params_hash=raw["params_hash"],
            result_hash=raw["result_hash"],
            epsilon_spent=epsilon_to_units(epsilon_spent),
        ),
        context={**hashes, "epsilon_spent": str(epsilon_spent)},
    )


def order_refund(*, order: Order) -> ChainTransaction:
    """Refund a job that failed before touching data: payment back to the buyer, budget released."""
    return _settle_enqueue(
        order,
        ChainTransaction.Purpose.REFUND,
        "refunded",
        lambda datatoken, order_id: datatoken.refund_data(order_id),
    )


def settlement_tx_prepare(tx: ChainTransaction, signer: Any, ahead: list[ChainTransaction]) -> str:
    """Right before the operator signs a receipt or refund (the first time, or again after the chain
    dropped the one sent), the order is read back from the chain once more: the chain may have rolled
    back since it was queued, and a reused id would pay or refund someone else's order. Its call data
    is kept as queued."""
    if tx.order_id is None:  # the order is gone (only deleting it clears the link)
        raise SendRefused("The order this transaction settles no longer exists.")
    order = Order.objects.select_related("listing").get(pk=tx.order_id)
    if order.status != Order.Status.CONFIRMED:
        raise SendRefused(f"The order is {order.get_status_display().lower()}; there is nothing to settle.")
    if not order_chain_matches(order=order):
        raise SendRefused(VANISHED_TEXT.format(why="it was not found on chain as accepted"))
    return tx.data


def receipt_settled(tx: ChainTransaction, receipt: Any) -> None:
    if tx.order_id is None:  # the order is gone (only deleting it clears the link): nothing to settle
        return
    if receipt is None:
        # An order that vanished keeps the sentence saying so.
        Order.objects.filter(pk=tx.order_id, status=Order.Status.CONFIRMED).update(
            error=f"Recording the receipt failed: {tx.error}"[:2000]
        )
        return
    order = Order.objects.select_for_update(of=("self",)).select_related("listing").get(pk=tx.order_id)
    if not _may_become(order, Order.Status.RECEIPTED):
        return
    events = Datatoken(client.web3(), order.listing.datatoken_address).receipt_events(receipt)
    event = events[0] if events else {}
    order_transition(
        order,
        Order.Status.RECEIPTED,
        epsilon_spent=Decimal(tx.context["epsilon_spent"]),
        receipt={
            **{k: tx.context[k] for k in ("dataset_hash", "algorithm_hash", "params_hash", "result_hash")},
            "tx_hash": tx.tx_hash,
            "block_number": tx.block_number,
            "provider_amount": str(units_to_price(event.get("providerAmount", 0))),
            "fee_amount": str(units_to_price(event.get("feeAmount", 0))),
        },
        settled_at=timezone.now(),
    )
    listing_budget_sync(order.listing)


def refund_settled(tx: ChainTransaction, receipt: Any) -> None:
    if tx.order_id is None:  # the order is gone (only deleting it clears the link): nothing to settle
        return
    if receipt is None:
        Order.objects.filter(pk=tx.order_id, status=Order.Status.CONFIRMED).update(
            error=f"The refund failed: {tx.error}"[:2000]
        )
        return
    order = Order.objects.select_for_update(of=("self",)).select_related("listing").get(pk=tx.order_id)
    if not _may_become(order, Order.Status.REFUNDED):
        return
    order_transition(order, Order.Status.REFUNDED, settled_at=timezone.now())
    listing_budget_sync(order.listing)


def _may_become(order: Order, to: str) -> bool:
    """Whether a mined settlement may move ``order`` to ``to``; a settlement mined for an order the
    marketplace already gave up (vanished) is logged, not applied, so the follower never fails on it."""
    if order.status == to or to in Order.TRANSITIONS.get(order.status, frozenset()):
        return True
    logger.warning("Order %s is %s; its mined settlement (%s) is not applied.", order.pk, order.status, to)
    return False


def listing_budget_sync(listing: ChainListing) -> None:
    ChainListing.objects.filter(pk=listing.pk).update(
        epsilon_ordered_units=Datatoken(client.web3(), listing.datatoken_address).epsilon_ordered()
    )
