"""Compute orders: quoted, paid on chain in one transaction (buy + order), verified, settled.

An order is accepted only after the chain says so: the transaction is mined under
``CHAIN_CONFIRMATIONS`` blocks, its ``OrderStarted`` event comes from this dataset's datatoken,
the consumer is one of the buyer's wallets, (epsilon, delta) and the algorithm hash match the
request, and the on-chain order id was never accepted before. Balance and budget are checked
before anything is sent."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from chain import client
from chain.models import ChainListing, ChainTransaction, Order, Wallet
from chain.revert import revert_message
from chain.services.transactions import (
    confirmed_receipt,
    on_settled,
    poll,
    prepare,
    transaction_enqueue,
)
from chain.services.wallets import user_addresses, wallet_primary
from chain.signals import order_status_changed
from chain.units import delta_to_units, epsilon_to_units, hash_bytes, units_to_epsilon, units_to_price
from chain.wrappers import Datatoken, MockStablecoin
from marketplace.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from marketplace.models import Dataset, User

logger = logging.getLogger(__name__)

# Gas a buy+order needs at most, for the "enough ether for gas" check on managed wallets.
ORDER_GAS_ALLOWANCE = 300_000
PERMIT_LIFETIME_SECONDS = 3600
# What a compute job hands the buyer, shown with every quote.
RELEASE_TEXT = (
    "Only differentially private outputs computed inside the sandbox (model weights, DP metrics, "
    "training curve) and the receipt; never rows of the dataset."
)


def algorithm_hash(algorithm: str, parameters: dict | None = None) -> str:
    """SHA-256 of the canonical JSON of the algorithm and its parameters: what an order commits to."""
    canonical = json.dumps(
        {"algorithm": algorithm, "parameters": parameters or {}}, sort_keys=True, separators=(",", ":")
    )
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Quote:
    dataset_id: int
    price: Decimal
    price_units: int
    fee: Decimal
    payment_token: str
    payment_token_symbol: str
    datatoken: str
    epsilon: Decimal
    delta: float
    epsilon_left: Decimal
    algorithm_hash: str
    wallet: str
    balance: Decimal
    allowance: Decimal
    permit_nonce: int
    chain_id: int
    problems: list[dict[str, str]]


def _published_listing(dataset: Dataset) -> ChainListing:
    listing = ChainListing.objects.filter(dataset=dataset).first()
    if listing is None or listing.state != ChainListing.State.PUBLISHED:
        raise Conflict("This dataset is not published on chain yet.", code="not_on_chain")
    return listing


def _budget_checks(
    dataset: Dataset, listing: ChainListing, datatoken: Datatoken, epsilon: Decimal, delta: float
) -> int:
    """Refusals for the request itself; returns the epsilon left on chain (units)."""
    if epsilon <= 0:
        raise InvalidInput("Epsilon must be greater than 0.", code="invalid_epsilon")
    if epsilon > dataset.epsilon_per_job:
        raise Conflict(
            f"At most epsilon {dataset.epsilon_per_job} per job on this dataset.",
            code="epsilon_per_job_exceeded",
            extra={"epsilon_per_job": str(dataset.epsilon_per_job)},
        )
    if delta <= 0 or delta > dataset.delta:
        raise Conflict(f"Delta must be above 0 and at most {dataset.delta}.", code="delta_exceeded")
    left = datatoken.epsilon_left()
    if epsilon_to_units(epsilon) > left:
        raise Conflict(
            f"The dataset's privacy budget has epsilon {units_to_epsilon(left)} left; this job asks for {epsilon}.",
            code="budget_exhausted",
            extra={"epsilon_left": str(units_to_epsilon(left))},
        )
    return left


def order_quote(
    *, user: User, dataset: Dataset, epsilon: Decimal, delta: float, algorithm_hash_hex: str, wallet_address: str | None
) -> Quote:
    """What an order would cost and whether the wallet can pay it, before anything is sent."""
    listing = _published_listing(dataset)
    w3 = client.web3()
    datatoken = Datatoken(w3, listing.datatoken_address)
    problems: list[dict[str, str]] = []
    epsilon_left = datatoken.epsilon_left()
    try:
        _budget_checks(dataset, listing, datatoken, epsilon, delta)
    except (Conflict, InvalidInput) as exc:
        problems.append({"code": exc.code, "detail": exc.detail})
    if dataset.status != Dataset.Status.LISTED or not datatoken.ordering_open():
        problems.append({"code": "ordering_closed", "detail": "This dataset cannot be ordered now."})
    addresses = user_addresses(user=user)
    address = wallet_address or wallet_primary(user=user).address
    if address not in addresses:
        raise PermissionDenied("That wallet is not one of yours (link it with Sign-In with Ethereum first).")
    token = MockStablecoin(w3, listing.payment_token)
    price_units = datatoken.price()
    balance = token.balance_of(address)
    allowance = token.allowance(address, datatoken.address)
    if balance < price_units:
        problems.append(
            {
                "code": "insufficient_balance",
                "detail": f"The wallet holds {units_to_price(balance)} {dataset.price_token}; "
                f"the job costs {units_to_price(price_units)}.",
            }
        )
    is_managed = Wallet.objects.filter(address=address, kind=Wallet.Kind.MANAGED).exists()
    if is_managed and price_units and w3.eth.get_balance(address) < ORDER_GAS_ALLOWANCE * w3.eth.gas_price:
        problems.append({"code": "insufficient_gas", "detail": "The wallet has too little ether to pay for gas."})
    fee_units = price_units * client.deployment().fee_bps // 10_000
    return Quote(
        dataset_id=dataset.pk,
        price=units_to_price(price_units),
        price_units=price_units,
        fee=units_to_price(fee_units),
        payment_token=listing.payment_token,
        payment_token_symbol=dataset.price_token,
        datatoken=listing.datatoken_address,
        epsilon=epsilon,
        delta=delta,
        epsilon_left=units_to_epsilon(epsilon_left),
        algorithm_hash=algorithm_hash_hex,
        wallet=address,
        balance=units_to_price(balance),
        allowance=units_to_price(allowance),
        permit_nonce=token.contract.functions.nonces(address).call(),
        chain_id=client.chain_id(),
        problems=problems,
    )


# --- Own wallets: the buy+order transaction prepared for a wallet the marketplace holds no key of ---

# EIP-712 types of an EIP-2612 permit, as eth_signTypedData_v4 and eth-account take them.
PERMIT_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


@dataclass(frozen=True)
class PreparedOrder:
    """One step of an own wallet's order: ``permit`` (EIP-712 typed data to sign) first, then
    ``transaction`` (the unsigned buyAndOrder carrying that permit). A free dataset needs no permit."""

    dataset_id: int
    wallet: str
    chain_id: int
    datatoken: str
    payment_token: str
    payment_token_symbol: str
    price: Decimal
    price_units: int
    epsilon: Decimal
    delta: float
    algorithm_hash: str
    step: str  # "sign_permit" or "send_transaction"
    permit: dict[str, Any] | None
    deadline: int | None
    transaction: dict[str, Any] | None


def permit_typed_data(
    *, token: MockStablecoin, owner: str, spender: str, value: int, nonce: int, deadline: int, chain_id: int
) -> dict[str, Any]:
    """The EIP-2612 permit as EIP-712 typed data (uint256 values as decimal strings, so JSON
    clients in any language keep them exact)."""
    return {
        "types": PERMIT_TYPES,
        "primaryType": "Permit",
        "domain": {
            "name": token.contract.functions.name().call(),
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": token.address,
        },
        "message": {
            "owner": Web3.to_checksum_address(owner),
            "spender": Web3.to_checksum_address(spender),
            "value": str(int(value)),
            "nonce": str(int(nonce)),
            "deadline": str(int(deadline)),
        },
    }


def _own_wallet(user: User, wallet_address: str) -> str:
    """``wallet_address`` checksummed, when it is a wallet the user linked (and proved) with SIWE."""
    try:
        address = Web3.to_checksum_address(wallet_address)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("That is not an Ethereum address.", code="invalid_address") from exc
    wallet = Wallet.objects.filter(user=user, address=address).first()
    if wallet is None or (wallet.kind == Wallet.Kind.EXTERNAL and wallet.verified_at is None):
        raise PermissionDenied(
            f"{address} is not linked to your account: link it with Sign-In with Ethereum first.",
            code="wallet_not_linked",
        )
    if wallet.kind == Wallet.Kind.MANAGED:
        raise Conflict(
            "The marketplace holds this wallet's key: order from it with POST orders/ (or POST jobs/) "
            "without a tx_hash.",
            code="managed_wallet",
        )
    return address


def _unsigned_transaction(w3: Web3, *, sender: str, to: str, data: str, chain_id: int) -> dict[str, Any]:
    """The call as an unsigned EIP-1559 transaction with a gas estimate and fee and nonce hints;
    refuses when the node says it would revert or the wallet cannot pay for gas."""
    call = {"from": sender, "to": to, "data": data, "value": 0}
    try:
        gas = int(w3.eth.estimate_gas(call) * 1.25) + 10_000
    except (ContractCustomError, ContractLogicError) as exc:
        raise Conflict(f"The order would fail on chain: {revert_message(exc)}", code="order_would_revert") from exc
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas") or 0)
    priority = int(w3.eth.max_priority_fee)
    max_fee = 2 * base_fee + priority
    if w3.eth.get_balance(sender) < gas * max_fee:
        raise Conflict("The wallet has too little ether to pay for gas.", code="insufficient_gas")
    return {
        "chain_id": chain_id,
        "from": sender,
        "to": to,
        "data": data,
        "value": 0,
        "gas": gas,
        "nonce": w3.eth.get_transaction_count(sender, "pending"),
        "max_fee_per_gas": max_fee,
        "max_priority_fee_per_gas": priority,
        "type": 2,
    }


def _permit_vrs(signature: str) -> tuple[int, bytes, bytes]:
    raw = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
    if len(raw) != 65:
        raise InvalidInput("The permit signature must be 65 bytes (r, s, v).", code="permit_bad_signature")
    v = raw[64] + 27 if raw[64] < 27 else raw[64]
    return v, raw[:32], raw[32:64]


def order_prepare(
    *,
    user: User,
    dataset: Dataset,
    epsilon: Decimal,
    delta: float,
    algorithm_hash_hex: str,
    wallet_address: str,
    permit_signature: str | None = None,
    permit_deadline: int | None = None,
) -> PreparedOrder:
    """Prepare buy+order for the buyer's own wallet (browser wallet or API client): without
    ``permit_signature``, the EIP-2612 permit to sign; with it (and the ``permit_deadline`` it
    signed), the unsigned ``buyAndOrder`` transaction carrying the permit, to sign and send. The
    buyer then registers the transaction hash (``order_create``/``job_create`` with ``tx_hash``).

    The same refusals as an order from the managed wallet, before anything is signed: listed and
    orderable on chain, not the buyer's own dataset, caps and budget left, the balance."""
    algo = hash_bytes(algorithm_hash_hex, "algorithm_hash")
    if dataset.status != Dataset.Status.LISTED:
        raise Conflict("Only listed datasets can be ordered.", code="not_listed")
    if dataset.owner_id == user.pk:
        raise Conflict("You cannot order compute on your own dataset.", code="own_dataset")
    listing = _published_listing(dataset)
    address = _own_wallet(user, wallet_address)
    w3 = client.web3()
    datatoken = Datatoken(w3, listing.datatoken_address)
    if not datatoken.ordering_open():
        raise Conflict("Ordering of this dataset is closed on chain.", code="ordering_closed")
    epsilon, delta = Decimal(epsilon), float(delta)
    _budget_checks(dataset, listing, datatoken, epsilon, delta)
    token = MockStablecoin(w3, listing.payment_token)
    price_units = datatoken.price()
    balance = token.balance_of(address)
    if balance < price_units:
        raise Conflict(
            f"The wallet holds {units_to_price(balance)} {dataset.price_token}; this job costs "
            f"{units_to_price(price_units)}.",
            code="insufficient_balance",
            extra={"balance": str(units_to_price(balance)), "price": str(units_to_price(price_units))},
        )
    chain_id = client.chain_id()
    order_args = {"epsilon": epsilon_to_units(epsilon), "delta": delta_to_units(delta), "algorithm_hash": algo}
    step: dict[str, Any] = {"permit": None, "deadline": None, "transaction": None}
    if not price_units:
        data = datatoken.dispense_and_order_data(**order_args)
        step["transaction"] = _unsigned_transaction(
            w3, sender=address, to=datatoken.address, data=data, chain_id=chain_id
        )
    else:
        # The permit's nonce from the pending state: a permit signed while another is in the mempool holds.
        nonce = token.contract.functions.nonces(address).call(block_identifier="pending")
        now = max(int(time.time()), int(w3.eth.get_block("latest")["timestamp"]))
        deadline = now + PERMIT_LIFETIME_SECONDS if permit_signature is None else int(permit_deadline or 0)
        typed = permit_typed_data(
            token=token,
            owner=address,
            spender=datatoken.address,
            value=price_units,
            nonce=nonce,
            deadline=deadline,
            chain_id=chain_id,
        )
        step["deadline"] = deadline
        if permit_signature is None:
            step["permit"] = typed
        else:
            if not permit_deadline:
                raise InvalidInput("Send the permit's deadline with its signature.", code="permit_deadline_missing")
            if deadline <= now:
                raise Conflict("The permit has expired; ask for a new one.", code="permit_expired")
            v, r, s = _permit_vrs(permit_signature)
            try:
                signer = Account.recover_message(encode_typed_data(full_message=typed), vrs=(v, r, s))
            except Exception as exc:
                raise InvalidInput("The permit signature is malformed.", code="permit_bad_signature") from exc
            if signer != address:
                raise InvalidInput(
                    f"The permit was not signed by {address} for this price, deadline and nonce; ask for a new one.",
                    code="permit_bad_signature",
                )
            data = datatoken.buy_and_order_data(**order_args, max_price=price_units, permit=(deadline, v, r, s))
            step["transaction"] = _unsigned_transaction(
                w3, sender=address, to=datatoken.address, data=data, chain_id=chain_id
            )
    return PreparedOrder(
        dataset_id=dataset.pk,
        wallet=address,
        chain_id=chain_id,
        datatoken=datatoken.address,
        payment_token=listing.payment_token,
        payment_token_symbol=dataset.price_token,
        price=units_to_price(price_units),
        price_units=price_units,
        epsilon=epsilon,
        delta=delta,
        algorithm_hash=algorithm_hash_hex.lower(),
        step="send_transaction" if step["transaction"] else "sign_permit",
        **step,
    )


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
    if dataset.status != Dataset.Status.LISTED:
        raise Conflict("Only listed datasets can be ordered.", code="not_listed")
    if dataset.owner_id == user.pk:
        raise Conflict("You cannot order compute on your own dataset.", code="own_dataset")
    listing = _published_listing(dataset)
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
        from chain.tasks import order_verify_task

        order_id = order.pk
        transaction.on_commit(lambda: order_verify_task.delay(order_id))
        return order

    if not datatoken.ordering_open():
        raise Conflict("Ordering of this dataset is closed on chain.", code="ordering_closed")
    _budget_checks(dataset, listing, datatoken, epsilon, delta)
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
    if w3.eth.get_balance(wallet.address) < ORDER_GAS_ALLOWANCE * w3.eth.gas_price:
        raise Conflict("Your wallet has too little ether to pay for gas.", code="insufficient_gas")
    with transaction.atomic():
        order = Order.objects.create(
            **common,
            source=Order.Source.MANAGED,
            status=Order.Status.PENDING,
            consumer_address=wallet.address,
            amount_units=price_units,
        )
        context = {"epsilon": epsilon_to_units(epsilon), "delta": delta_to_units(delta), "algo": "0x" + algo.hex()}
        if price_units:
            context.update({"max_price": price_units, "token": listing.payment_token})
            data = "0x"  # built with a fresh permit just before signing
        else:
            data = datatoken.dispense_and_order_data(
                epsilon=context["epsilon"], delta=context["delta"], algorithm_hash=algo
            )
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


@prepare(ChainTransaction.Purpose.ORDER)
def _order_prepare(tx: ChainTransaction, signer: LocalAccount, ahead: list[ChainTransaction]) -> str:
    """buyAndOrder call data with a permit signed now; ``ahead`` are the wallet's transactions
    signed before this one and not mined yet."""
    ctx = tx.context
    w3 = client.web3()
    datatoken = Datatoken(w3, tx.to)
    algo = bytes.fromhex(ctx["algo"][2:])
    if "max_price" not in ctx:
        return datatoken.dispense_and_order_data(epsilon=ctx["epsilon"], delta=ctx["delta"], algorithm_hash=algo)
    token = MockStablecoin(w3, ctx["token"])
    deadline = int(time.time()) + PERMIT_LIFETIME_SECONDS
    # Permits of this wallet's orders that are not mined yet come on top of the mined state's nonce.
    permits = sum(1 for t in ahead if t.purpose == ChainTransaction.Purpose.ORDER and "max_price" in t.context)
    nonce = token.contract.functions.nonces(signer.address).call() + permits
    v, r, s = token.permit_signature(signer, tx.to, ctx["max_price"], deadline, chain_id=tx.chain_id, nonce=nonce)
    return datatoken.buy_and_order_data(
        epsilon=ctx["epsilon"],
        delta=ctx["delta"],
        algorithm_hash=algo,
        max_price=ctx["max_price"],
        permit=(deadline, v, r, s),
    )


def _announce(order: Order) -> None:
    """Tell listeners (the order's compute job) about the new status once it is committed."""
    order_id, status = order.pk, order.status
    transaction.on_commit(lambda: order_status_changed.send(sender=Order, order_id=order_id, status=status))


def _reject(order: Order, reason: str) -> Order:
    order.status = Order.Status.REJECTED
    order.error = reason[:2000]
    order.save(update_fields=["status", "error"])
    _announce(order)
    return order


def _accept(order: Order, receipt: Any) -> Order:
    """Accept ``order`` from a mined receipt, or reject it saying which check failed."""
    if receipt["status"] != 1:
        return _reject(order, "The order transaction reverted on chain.")
    listing = order.listing
    events = Datatoken(client.web3(), listing.datatoken_address).order_started_events(receipt)
    if not events:
        return _reject(order, "The transaction placed no order on this dataset's datatoken.")
    event = events[0]
    consumer = event["consumer"]
    if order.buyer is None or consumer not in user_addresses(user=order.buyer):
        return _reject(order, f"The order's consumer {consumer} is not one of your wallets.")
    mismatches = []
    if int(event["epsilon"]) != epsilon_to_units(order.epsilon):
        mismatches.append(f"epsilon {units_to_epsilon(event['epsilon'])} on chain, {order.epsilon} requested")
    if int(event["delta"]) != delta_to_units(order.delta):
        mismatches.append("delta differs from the request")
    if event["algorithmHash"].lower() != order.algorithm_hash.lower():
        mismatches.append("the algorithm hash differs from the request")
    if mismatches:
        return _reject(order, "The on-chain order does not match the request: " + "; ".join(mismatches) + ".")
    order.consumer_address = consumer
    order.chain_order_id = int(event["orderId"])
    order.amount_units = int(event["amount"])
    order.block_number = receipt["blockNumber"]
    order.status = Order.Status.CONFIRMED
    order.confirmed_at = timezone.now()
    try:
        with transaction.atomic():
            order.save(
                update_fields=[
                    "consumer_address",
                    "chain_order_id",
                    "amount_units",
                    "block_number",
                    "status",
                    "confirmed_at",
                ]
            )
    except IntegrityError:
        holder = Order.objects.filter(listing=listing, chain_order_id=order.chain_order_id).exclude(pk=order.pk).first()
        # After a rollback the chain reuses ids: an order that holds this id but is no longer on
        # chain gives it up (vanished) rather than turning this buyer's payment away.
        if holder is None or not order_chain_mismatch(order=holder):
            order.refresh_from_db()
            return _reject(order, "This on-chain order was already used for another job.")
        order_vanish(order=holder, why="the chain reused its id for another order")
        with transaction.atomic():
            order.save(
                update_fields=[
                    "consumer_address",
                    "chain_order_id",
                    "amount_units",
                    "block_number",
                    "status",
                    "confirmed_at",
                ]
            )
    _sync_budget(listing)
    _announce(order)
    return order


@on_settled(ChainTransaction.Purpose.ORDER)
def _order_settled(tx: ChainTransaction, receipt: Any) -> None:
    order = (
        Order.objects.select_for_update(of=("self",)).select_related("listing", "buyer").filter(pk=tx.order_id).first()
    )
    if order is None or order.status != Order.Status.PENDING:
        return
    order.tx_hash = tx.tx_hash.lower()
    order.save(update_fields=["tx_hash"])
    if receipt is None:
        _reject(order, tx.error or "The order transaction failed.")
        return
    _accept(order, receipt)


def order_verify(order_id: int, *, max_wait_seconds: float = 20) -> bool:
    """Verify an order whose transaction the buyer sent. True once decided (confirmed or rejected)."""

    def decided() -> bool:
        order = Order.objects.get(pk=order_id)
        if order.status != Order.Status.CONFIRMING:
            return True
        receipt = confirmed_receipt(order.tx_hash)
        if receipt is None:
            if order.created_at < timezone.now() - timedelta(hours=1):
                _reject(order, "The transaction was not confirmed on chain within an hour.")
                return True
            return False
        with transaction.atomic():
            locked = Order.objects.select_for_update(of=("self",)).select_related("listing", "buyer").get(pk=order_id)
            if locked.status == Order.Status.CONFIRMING:
                _accept(locked, receipt)
        return True

    return poll(decided, max_wait_seconds=max_wait_seconds)


def order_get_visible(*, order_id: int, user: User) -> Order:
    order = Order.objects.select_related("dataset", "listing").filter(pk=order_id).first()
    if order is None or not (user.is_staff or order.buyer_id == user.pk or order.dataset.owner_id == user.pk):
        raise NotFound("No such order.")
    return order


# --- Settlement by the operator (compute jobs call these) ---


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
        locked.status = Order.Status.VANISHED
        # Its id is free on chain for the order that holds it now; the text keeps the old one.
        locked.error = VANISHED_TEXT.format(why=f"on-chain order {locked.chain_order_id}: {why}")[:2000]
        locked.chain_order_id = None
        locked.save(update_fields=["status", "error", "chain_order_id"])
        _announce(locked)
    return locked


def order_settlement_undo(*, order: Order) -> Order:
    """The chain dropped the block with ``order``'s receipt or refund (a reorganisation or a
    rollback) but still holds the order: it is confirmed again, and its job settles again."""
    with transaction.atomic():
        locked = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        if locked.status not in (Order.Status.RECEIPTED, Order.Status.REFUNDED):
            return locked
        logger.warning("Order %s: the chain dropped its settlement; it is confirmed again.", locked.pk)
        locked.status = Order.Status.CONFIRMED
        locked.receipt, locked.epsilon_spent, locked.settled_at = None, None, None
        locked.save(update_fields=["status", "receipt", "epsilon_spent", "settled_at"])
        _announce(locked)
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
    order: Order, purpose: str, verb: str, call_data: Callable[[Datatoken, Order], str], context: dict | None = None
) -> ChainTransaction:
    """The operator's settlement of a confirmed order (receipt or refund), at most one in flight.
    The order is read back from the chain first (``OrderVanished`` when it is not there as accepted),
    so a rolled-back chain that reused its id never pays or refunds someone else's order."""
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
        datatoken = Datatoken(client.web3(), locked.listing.datatoken_address)
        return transaction_enqueue(
            purpose=purpose,
            sender=client.operator_account().address,
            to=datatoken.address,
            data=call_data(datatoken, locked),
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
        lambda datatoken, locked: datatoken.record_receipt_data(
            order_id=locked.chain_order_id,
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
        lambda datatoken, locked: datatoken.refund_data(locked.chain_order_id),
    )


@on_settled(ChainTransaction.Purpose.RECEIPT)
def _receipt_settled(tx: ChainTransaction, receipt: Any) -> None:
    if receipt is None:
        Order.objects.filter(pk=tx.order_id).update(error=f"Recording the receipt failed: {tx.error}"[:2000])
        return
    order = Order.objects.select_for_update(of=("self",)).select_related("listing").get(pk=tx.order_id)
    events = Datatoken(client.web3(), order.listing.datatoken_address).receipt_events(receipt)
    event = events[0] if events else {}
    order.status = Order.Status.RECEIPTED
    order.epsilon_spent = Decimal(tx.context["epsilon_spent"])
    order.receipt = {
        **{k: tx.context[k] for k in ("dataset_hash", "algorithm_hash", "params_hash", "result_hash")},
        "tx_hash": tx.tx_hash,
        "block_number": tx.block_number,
        "provider_amount": str(units_to_price(event.get("providerAmount", 0))),
        "fee_amount": str(units_to_price(event.get("feeAmount", 0))),
    }
    order.settled_at = timezone.now()
    order.save(update_fields=["status", "epsilon_spent", "receipt", "settled_at"])
    _sync_budget(order.listing)
    _announce(order)


@on_settled(ChainTransaction.Purpose.REFUND)
def _refund_settled(tx: ChainTransaction, receipt: Any) -> None:
    if receipt is None:
        Order.objects.filter(pk=tx.order_id).update(error=f"The refund failed: {tx.error}"[:2000])
        return
    order = Order.objects.select_for_update(of=("self",)).select_related("listing").get(pk=tx.order_id)
    order.status = Order.Status.REFUNDED
    order.settled_at = timezone.now()
    order.save(update_fields=["status", "settled_at"])
    _sync_budget(order.listing)
    _announce(order)


def _sync_budget(listing: ChainListing) -> None:
    ChainListing.objects.filter(pk=listing.pk).update(
        epsilon_ordered_units=Datatoken(client.web3(), listing.datatoken_address).epsilon_ordered()
    )
