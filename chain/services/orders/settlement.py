"""Settlement by the operator (compute jobs call these): a receipt or a refund of a confirmed
order, sent only after the order is read back from the chain as it was accepted and before its
deadline; a rollback that dropped the order marks it ``vanished``. After the deadline the buyer
reclaims it (``order_reclaim``). Settlements only credit accounts on chain (contracts v2): each
credited account's ``withdraw`` follows as its own transaction, so one recipient that cannot be
paid fails only its own withdrawal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from web3 import Web3

from chain import client
from chain.models import ChainListing, ChainTransaction, Order
from chain.services.orders.quote import chain_now
from chain.services.outbox import (
    SendRefused,
    transaction_enqueue,
)
from chain.services.transitions import order_transition
from chain.units import delta_to_units, epsilon_to_units, hash_bytes, units_to_price
from chain.wrappers import Datatoken, OrderTerms
from common.errors import Conflict, PermissionDenied
from marketplace.models import User

logger = logging.getLogger(__name__)


class OrderVanished(Conflict):
    """The chain no longer holds the order as it was accepted (rolled back, or its id reused by
    another order): it is marked ``vanished`` and never settled."""

    code = "order_vanished"


class OrderExpired(Conflict):
    """The order passed (or is about to pass) its on-chain deadline unsettled: the operator can no
    longer settle it, and its buyer can reclaim the payment."""

    code = "order_expired"


EXPIRED_TEXT = (
    "This order passed its deadline on chain before it was settled: the marketplace can no longer settle "
    "it, and the buyer can reclaim the payment (the epsilon is released)."
)
# A settlement is sent only while at least this much of the order's window is left, so it is mined
# before the deadline (after it the chain refuses it with OrderExpired).
SETTLE_MARGIN_SECONDS = 600

VANISHED_TEXT = (
    "The chain no longer holds this order ({why}): it was rolled back. Nothing was charged for it and "
    "nothing will be settled."
)


def order_terms(order: Order) -> OrderTerms:
    """The ``Order`` tuple settlement and reclaim present to the chain (every field from ``OrderStarted``)."""
    if order.deadline is None:
        raise Conflict("This order has no on-chain deadline recorded; it cannot be settled.", code="no_deadline")
    return OrderTerms(
        consumer=order.consumer_address,
        epsilon=epsilon_to_units(order.epsilon),
        delta=delta_to_units(order.delta),
        amount=int(order.amount_units),
        deadline=int(order.deadline),
    )


def order_chain_mismatch(*, order: Order) -> str:
    """Why the chain does not hold ``order`` as the marketplace accepted it (open under the
    commitment of its consumer, epsilon, delta, amount and deadline, or settled; its ``OrderStarted``
    from the same consumer, amount and parameters hash, in the same transaction), or "" when it does.
    Raises ``ChainUnavailable`` when the node does not answer (never "vanished" for a chain that is
    merely down)."""
    if order.chain_order_id is None:
        return "it has no on-chain order id"
    order_id = int(order.chain_order_id)
    datatoken = Datatoken(client.web3(), order.listing.datatoken_address)
    held = datatoken.order(order_id)
    if held.status == "none":
        return f"there is no order {order_id} on chain"
    if held.status == "open" and order.deadline is not None and held.commitment != order_terms(order).commitment():
        return f"order {order_id} on chain is another wallet's, or paid another amount"
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
        if locked.status not in (Order.Status.RECEIPTED, Order.Status.REFUNDED, Order.Status.RECLAIMED):
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


def order_expiry_check(order: Order) -> None:
    """Raise ``OrderExpired`` (and say so on the order) when too little of its window is left to settle it."""
    if order.deadline is not None and chain_now(client.web3()) + SETTLE_MARGIN_SECONDS > int(order.deadline):
        Order.objects.filter(pk=order.pk, status=Order.Status.CONFIRMED).update(error=EXPIRED_TEXT)
        raise OrderExpired(EXPIRED_TEXT)


def _settle_enqueue(
    order: Order,
    purpose: str,
    verb: str,
    call_data: Callable[[Datatoken, int, OrderTerms], str],
    context: dict | None = None,
) -> ChainTransaction:
    """The operator's settlement of a confirmed order (receipt or refund), at most one in flight.
    The order is read back from the chain first (``OrderVanished`` when it is not there as accepted),
    so a rolled-back chain that reused its id never pays or refunds someone else's order; an order
    too close to (or past) its deadline raises ``OrderExpired``. ``call_data`` builds the call from
    the datatoken, the on-chain order id and the order's terms."""
    with transaction.atomic():
        locked, in_flight = _settleable(order, verb)
        if in_flight:
            return in_flight
    order_expiry_check(locked)
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
            data=call_data(datatoken, locked.chain_order_id, order_terms(locked)),
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
) -> ChainTransaction:
    """Record a job's receipt on chain: credits the escrowed payment to the provider and the
    marketplace, and charges exactly the order's reserved epsilon and delta (contracts v2: the
    operator reports no epsilon spent, so it cannot give budget back)."""
    hashes = {
        "dataset_hash": dataset_hash,
        "algorithm_hash": algorithm_hash_hex,
        "params_hash": params_hash,
        "result_hash": result_hash,
    }
    raw = {k: hash_bytes(v, k) for k, v in hashes.items()}
    return _settle_enqueue(
        order,
        ChainTransaction.Purpose.RECEIPT,
        "settled",
        lambda datatoken, order_id, terms: datatoken.record_receipt_data(
            order_id=order_id,
            order=terms,
            dataset_hash=raw["dataset_hash"],
            algorithm_hash=raw["algorithm_hash"],
            params_hash=raw["params_hash"],
            result_hash=raw["result_hash"],
        ),
        context=hashes,
    )


def order_refund(*, order: Order) -> ChainTransaction:
    """Refund a job that failed before touching data: payment back to the buyer, budget released."""
    return _settle_enqueue(
        order,
        ChainTransaction.Purpose.REFUND,
        "refunded",
        lambda datatoken, order_id, terms: datatoken.refund_data(order_id, terms),
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
    datatoken = Datatoken(client.web3(), order.listing.datatoken_address)
    events = datatoken.receipt_events(receipt)
    event = events[0] if events else {}
    order_transition(
        order,
        Order.Status.RECEIPTED,
        # A receipt charges the whole reservation.
        epsilon_spent=order.epsilon,
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
    credited = []
    if int(event.get("providerAmount", 0)):
        credited.append(datatoken.payment_collector())
    if int(event.get("feeAmount", 0)):
        credited.append(datatoken.fee_collector())
    withdrawals_enqueue(datatoken=datatoken, accounts=credited, order=order)


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
    if int(order.amount_units):
        datatoken = Datatoken(client.web3(), order.listing.datatoken_address)
        withdrawals_enqueue(datatoken=datatoken, accounts=[order.consumer_address], order=order)


# --- reclaim: the buyer's exit once an order passed its deadline unsettled ---


def order_reclaimable(order: Order) -> bool:
    """Whether the buyer may reclaim ``order`` now: confirmed (unsettled) and past its deadline on chain."""
    if order.status != Order.Status.CONFIRMED or order.deadline is None or order.chain_order_id is None:
        return False
    return chain_now(client.web3()) > int(order.deadline)


def _reclaim_check(order: Order, user: User) -> None:
    if order.buyer_id != user.pk:
        raise PermissionDenied("Only the buyer can reclaim this order.")
    if order.status != Order.Status.CONFIRMED:
        raise Conflict(f"Only an unsettled order can be reclaimed; this one is {order.status}.", code="not_confirmed")
    if order.deadline is None or order.chain_order_id is None:
        raise Conflict("This order has no on-chain deadline recorded.", code="no_deadline")
    if not order_reclaimable(order):
        raise Conflict(
            f"The order can be reclaimed only after its deadline (unix time {order.deadline}).",
            code="order_not_expired",
            extra={"deadline": int(order.deadline)},
        )


def order_reclaim(*, order: Order, user: User) -> ChainTransaction:
    """The buyer reclaims an order past its deadline from their managed wallet (the marketplace
    signs with its key): the payment is credited back, then withdrawn, and the epsilon released.
    An own wallet sends ``reclaim`` itself (``order_reclaim_call``)."""
    from chain.models import Wallet

    with transaction.atomic():
        locked = Order.objects.select_for_update(of=("self",)).select_related("listing").get(pk=order.pk)
        _reclaim_check(locked, user)
        in_flight = ChainTransaction.objects.filter(
            order=locked,
            purpose=ChainTransaction.Purpose.RECLAIM,
            status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT],
        ).first()
        if in_flight is not None:
            return in_flight
        if not Wallet.objects.filter(user=user, kind=Wallet.Kind.MANAGED, address=locked.consumer_address).exists():
            raise Conflict(
                "This order was paid from your own wallet: send the reclaim from it (the order page's button, "
                "or Datatoken.reclaim(orderId, order) straight on chain).",
                code="own_wallet",
            )
        datatoken = Datatoken(client.web3(), locked.listing.datatoken_address)
        return transaction_enqueue(
            purpose=ChainTransaction.Purpose.RECLAIM,
            sender=locked.consumer_address,
            to=datatoken.address,
            data=datatoken.reclaim_data(int(locked.chain_order_id or 0), order_terms(locked)),
            order=locked,
            dataset=locked.dataset,
        )


def order_reclaim_call(*, order: Order, user: User) -> dict[str, Any]:
    """What an own wallet sends to reclaim ``order``: the datatoken, the call data, and the
    ``reclaim(orderId, order)`` arguments (anyone may send it; the payment always goes to the buyer)."""
    _reclaim_check(order, user)
    datatoken = Datatoken(client.web3(), order.listing.datatoken_address)
    terms = order_terms(order)
    return {
        "to": datatoken.address,
        "data": datatoken.reclaim_data(int(order.chain_order_id or 0), terms),
        "order_id": str(order.chain_order_id),
        "order": {
            "consumer": terms.consumer,
            "epsilon": str(terms.epsilon),
            "delta": str(terms.delta),
            "amount": str(terms.amount),
            "deadline": terms.deadline,
        },
    }


def reclaim_settled(tx: ChainTransaction, receipt: Any) -> None:
    if tx.order_id is None:
        return
    if receipt is None:
        Order.objects.filter(pk=tx.order_id, status=Order.Status.CONFIRMED).update(
            error=f"The reclaim failed: {tx.error}"[:2000]
        )
        return
    order = Order.objects.select_for_update(of=("self",)).select_related("listing").get(pk=tx.order_id)
    order_reclaimed(order)


def order_reclaimed(order: Order) -> None:
    """The chain mined a reclaim of ``order`` (sent by us or by anyone): it follows, and the buyer's
    credit is withdrawn. Call with the order row locked."""
    if not _may_become(order, Order.Status.RECLAIMED) or order.status == Order.Status.RECLAIMED:
        return
    order_transition(order, Order.Status.RECLAIMED, settled_at=timezone.now(), error="")
    listing_budget_sync(order.listing)
    if int(order.amount_units):
        datatoken = Datatoken(client.web3(), order.listing.datatoken_address)
        withdrawals_enqueue(datatoken=datatoken, accounts=[order.consumer_address], order=order)


# --- pull payments: every credited account's withdrawal, each its own transaction ---


def withdrawals_enqueue(
    *, datatoken: Datatoken, accounts: list[str], order: Order | None = None
) -> list[ChainTransaction]:
    """Queue ``withdraw(account)`` from the operator for each account with credits on ``datatoken``
    (anyone may send it; it always pays the account), unless one is already on its way."""
    if not settings.CHAIN_OPERATOR_KEY:
        logger.warning("CHAIN_OPERATOR_KEY is not set; credits on %s are left to withdraw", datatoken.address)
        return []
    queued = []
    for account in dict.fromkeys(Web3.to_checksum_address(a) for a in accounts):
        in_flight = ChainTransaction.objects.filter(
            purpose=ChainTransaction.Purpose.WITHDRAW,
            to=datatoken.address,
            context__account=account,
            status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT],
        ).exists()
        if in_flight or not datatoken.credits(account):
            continue
        queued.append(
            transaction_enqueue(
                purpose=ChainTransaction.Purpose.WITHDRAW,
                sender=client.operator_account().address,
                to=datatoken.address,
                data=datatoken.withdraw_data(account),
                order=order,
                dataset=order.dataset if order is not None else None,
                context={"account": account},
            )
        )
    return queued


def withdraw_tx_prepare(tx: ChainTransaction, signer: Any, ahead: list[ChainTransaction]) -> str:
    """Nothing to send when the credits were withdrawn meanwhile (anyone may withdraw for anyone)."""
    if not Datatoken(client.web3(), tx.to).credits(tx.context["account"]):
        raise SendRefused("Nothing left to withdraw: the credits were already paid out.")
    return tx.data


def withdraw_settled(tx: ChainTransaction, receipt: Any) -> None:
    """A withdrawal mined or failed. A failure (a recipient the token refuses to pay) stays with this
    transaction, logged and shown on it; the settlement it follows stands."""
    if receipt is None:
        logger.error("Withdrawal %s for %s on %s failed: %s", tx.pk, tx.context.get("account"), tx.to, tx.error)


def _may_become(order: Order, to: str) -> bool:
    """Whether a mined settlement may move ``order`` to ``to``; a settlement mined for an order the
    marketplace already gave up (vanished) is logged, not applied, so the follower never fails on it."""
    if order.status == to or to in Order.TRANSITIONS.get(order.status, frozenset()):
        return True
    logger.warning("Order %s is %s; its mined settlement (%s) is not applied.", order.pk, order.status, to)
    return False


def listing_budget_sync(listing: ChainListing) -> None:
    datatoken = Datatoken(client.web3(), listing.datatoken_address)
    ChainListing.objects.filter(pk=listing.pk).update(
        epsilon_ordered_units=datatoken.epsilon_ordered(), delta_ordered_units=datatoken.delta_ordered()
    )
