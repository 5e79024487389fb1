"""Placing an order: from the buyer's managed wallet (the marketplace signs buy+order with a fresh
permit just before sending) or registered from the buyer's own wallet by transaction hash."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain import client
from chain.models import ChainTransaction, Order, Wallet
from chain.selectors import dataset_orderable
from chain.services.orders.quote import (
    ORDER_GAS_ALLOWANCE,
    PERMIT_LIFETIME_SECONDS,
    budget_checks,
    published_listing,
    ticket_issue,
)
from chain.services.orders.verification import order_accept, order_reject
from chain.services.outbox import (
    transaction_enqueue,
)
from chain.services.wallets import user_addresses
from chain.units import delta_to_units, epsilon_to_units, hash_bytes, units_to_price
from chain.wrappers import Datatoken, MockStablecoin, OrderTicket
from common.errors import Conflict, NotFound
from common.tasks import enqueue
from marketplace.models import Dataset, User


def order_create(
    *,
    user: User,
    dataset: Dataset,
    epsilon: Decimal,
    delta: float,
    algorithm_hash_hex: str,
    tx_hash: str | None = None,
) -> Order:
    """Place an order. Without ``tx_hash`` the marketplace sends buy+order from the buyer's managed
    wallet (one transaction with an EIP-2612 permit); with it, the buyer's own wallet already sent
    it and the marketplace verifies it. Returns at once with the order pending or confirming."""
    algo = hash_bytes(algorithm_hash_hex, "algorithm_hash")
    refusal = dataset_orderable(dataset=dataset, user=user)
    if refusal is not None:
        raise refusal.as_error()
    listing = published_listing(dataset)
    w3 = client.web3()
    datatoken = Datatoken(w3, listing.datatoken_address)
    epsilon = Decimal(epsilon)
    delta = float(delta)
    common = {
        "buyer": user,
        "dataset": dataset,
        "listing": listing,
        "epsilon": epsilon,
        "delta": delta,
        "algorithm_hash": algorithm_hash_hex.lower(),
    }
    if tx_hash:
        hash_bytes(tx_hash, "tx_hash")
        try:
            with transaction.atomic():
                order = Order.objects.create(
                    **common,
                    source=Order.Source.EXTERNAL,
                    status=Order.Status.CONFIRMING,
                    tx_hash=tx_hash.lower(),
                    consumer_address="",
                )
        except IntegrityError as exc:
            claimed = _claim_indexed_order(user=user, tx_hash=tx_hash.lower(), common=common)
            if claimed is not None:
                return claimed
            raise Conflict("This transaction was already registered as an order.", code="order_replayed") from exc
        enqueue("chain.tasks.order_verify_task", order.pk)
        return order

    if not datatoken.ordering_open():
        raise Conflict("Ordering of this dataset is closed on chain.", code="ordering_closed")
    budget_checks(dataset, listing, datatoken, epsilon, delta)
    wallet = Wallet.objects.filter(user=user, kind=Wallet.Kind.MANAGED).first()
    if wallet is None:
        raise Conflict(
            "You have no managed wallet: send the order from your own wallet and register its transaction hash.",
            code="no_managed_wallet",
        )
    price_units = datatoken.price()
    token = MockStablecoin(w3, listing.payment_token)
    balance = token.balance_of(wallet.address)
    if balance < price_units:
        raise Conflict(
            f"Your wallet holds {units_to_price(balance)} {dataset.price_token}; this job costs "
            f"{units_to_price(price_units)}.",
            code="insufficient_balance",
            extra={"balance": str(units_to_price(balance)), "price": str(units_to_price(price_units))},
        )
    if w3.eth.get_balance(Web3.to_checksum_address(wallet.address)) < ORDER_GAS_ALLOWANCE * w3.eth.gas_price:
        raise Conflict("Your wallet has too little ether to pay for gas.", code="insufficient_gas")
    with transaction.atomic():
        epsilon_units, delta_units = epsilon_to_units(epsilon), delta_to_units(delta)
        # The ticket's nonce is the on-chain order id, known before anything is sent.
        issued = ticket_issue(
            user=user,
            listing=listing,
            datatoken=datatoken,
            buyer_address=wallet.address,
            epsilon_units=epsilon_units,
            delta_units=delta_units,
            algorithm_hash_bytes=algo,
            price_units=price_units,
        )
        order = Order.objects.create(
            **common,
            source=Order.Source.MANAGED,
            status=Order.Status.PENDING,
            consumer_address=wallet.address,
            amount_units=price_units,
            chain_order_id=issued.call.nonce,
            ticket_expires_at=issued.row.expires_at,
        )
        context: dict[str, Any] = {"ticket": issued.as_json()}
        if price_units:
            context.update({"price": price_units, "token": listing.payment_token})
            data = "0x"  # built with a fresh permit just before signing
        else:
            data = datatoken.dispense_and_order_data(ticket=issued.call, signature=issued.signature)
        transaction_enqueue(
            purpose=ChainTransaction.Purpose.ORDER,
            sender=wallet.address,
            to=datatoken.address,
            data=data,
            dataset=dataset,
            order=order,
            context=context,
        )
    return order


def _claim_indexed_order(*, user: User, tx_hash: str, common: dict) -> Order | None:
    """The indexer may have seen the buyer's transaction before the buyer registered it (an order
    row with no buyer, source ``chain``). The buyer claims it when the consumer is one of their
    wallets and the order matches the request; anything else stays a replay."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(tx_hash=tx_hash, source=Order.Source.CHAIN).first()
        if order is None or order.buyer_id not in (None, user.pk) or order.listing_id != common["listing"].pk:
            return None
        matches = (
            order.consumer_address in user_addresses(user=user)
            and epsilon_to_units(order.epsilon) == epsilon_to_units(common["epsilon"])
            and delta_to_units(order.delta) == delta_to_units(common["delta"])
            and order.algorithm_hash.lower() == common["algorithm_hash"]
        )
        if not matches:
            return None
        order.buyer = user
        order.source = Order.Source.EXTERNAL
        order.save(update_fields=["buyer", "source"])
        return order


def order_tx_prepare(tx: ChainTransaction, signer: LocalAccount, ahead: list[ChainTransaction]) -> str:
    """buyAndOrder call data with the order's ticket and a permit signed now; ``ahead`` are the
    wallet's transactions signed before this one and not mined yet."""
    ctx = tx.context
    w3 = client.web3()
    datatoken = Datatoken(w3, tx.to)
    ticket = OrderTicket.from_json(ctx["ticket"])
    signature = bytes.fromhex(ctx["ticket"]["signature"][2:])
    if "price" not in ctx:
        return datatoken.dispense_and_order_data(ticket=ticket, signature=signature)
    token = MockStablecoin(w3, ctx["token"])
    deadline = int(time.time()) + PERMIT_LIFETIME_SECONDS
    # Permits of this wallet's orders that are not mined yet come on top of the mined state's nonce.
    permits = sum(1 for t in ahead if t.purpose == ChainTransaction.Purpose.ORDER and "price" in t.context)
    nonce = token.nonces(signer.address) + permits
    v, r, s = token.permit_signature(signer, tx.to, ctx["price"], deadline, chain_id=tx.chain_id, nonce=nonce)
    return datatoken.buy_and_order_data(ticket=ticket, signature=signature, permit=(deadline, v, r, s))


def order_tx_settled(tx: ChainTransaction, receipt: Any) -> None:
    if tx.order_id is None:  # the order is gone (only deleting it clears the link)
        return
    order = (
        Order.objects.select_for_update(of=("self",)).select_related("listing", "buyer").filter(pk=tx.order_id).first()
    )
    if order is None or order.status != Order.Status.PENDING:
        return
    order.tx_hash = tx.tx_hash.lower()
    order.save(update_fields=["tx_hash"])
    if receipt is None:
        order_reject(order, tx.error or "The order transaction failed.")
        return
    order_accept(order, receipt)


def order_get_visible(*, order_id: int, user: User) -> Order:
    order = Order.objects.select_related("dataset", "listing").filter(pk=order_id).first()
    if order is None or not (user.is_staff or order.buyer_id == user.pk or order.dataset.owner_id == user.pk):
        raise NotFound("No such order.")
    return order
