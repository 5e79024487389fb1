"""Quote, ticket and permit: what an order would cost, the refusals before anything is signed, the
operator-signed order ticket every order carries (contracts v2: without one the chain refuses it),
and the EIP-2612 permit and unsigned ``buyAndOrder`` an own wallet signs (``order_prepare``)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_typing import ChecksumAddress, HexStr
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxParams, Wei

from chain import client
from chain.models import ChainListing, OrderTicket, Wallet
from chain.revert import revert_message
from chain.selectors import dataset_orderable
from chain.services.wallets import user_addresses, wallet_primary
from chain.units import (
    delta_to_units,
    epsilon_to_units,
    hash_bytes,
    units_to_delta,
    units_to_epsilon,
    units_to_price,
)
from chain.wrappers import PERMIT_TYPES, Datatoken, MockStablecoin
from chain.wrappers import OrderTicket as TicketCall
from common.errors import Conflict, InvalidInput, PermissionDenied
from marketplace.models import Dataset, User

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


# Ticket nonces are the on-chain order ids, stored in ``Order.chain_order_id`` (a signed 64-bit
# column) and shown in the API: below 2**53, so JSON clients reading numbers as doubles (JavaScript)
# keep them exact; 53 random bits make a collision on one datatoken negligible (and it is checked).
TICKET_NONCE_LIMIT = 2**53


def chain_now(w3: Web3) -> int:
    """Unix time as the chain sees it (a development chain's clock may run ahead of ours)."""
    return max(int(time.time()), int(w3.eth.get_block("latest")["timestamp"]))


@dataclass(frozen=True)
class IssuedTicket:
    """An order ticket the operator signed, its row, and what the order call takes."""

    row: OrderTicket
    call: TicketCall
    signature: bytes

    def as_json(self) -> dict[str, Any]:
        return {**self.call.as_json(), "signature": "0x" + self.signature.hex()}


def ticket_issue(
    *,
    user: User,
    listing: ChainListing,
    datatoken: Datatoken,
    buyer_address: str,
    epsilon_units: int,
    delta_units: int,
    algorithm_hash_bytes: bytes,
    price_units: int,
) -> IssuedTicket:
    """Sign an order ticket with the operator key for exactly this buyer, dataset, request and price
    (a fresh random nonce, the order's on-chain id; it expires ``CHAIN_TICKET_LIFETIME_SECONDS`` from
    now on the chain's clock) and record it, so verification can check the mined order against it."""
    w3 = client.web3()
    expiry = chain_now(w3) + settings.CHAIN_TICKET_LIFETIME_SECONDS
    buyer = Web3.to_checksum_address(buyer_address)
    while True:
        nonce = 1 + secrets.randbelow(TICKET_NONCE_LIMIT - 1)
        if not OrderTicket.objects.filter(listing=listing, nonce=nonce).exists():
            break
    call = TicketCall(
        epsilon=int(epsilon_units),
        delta=int(delta_units),
        algorithm_hash=algorithm_hash_bytes,
        price=int(price_units),
        nonce=nonce,
        expiry=expiry,
    )
    signature = datatoken.sign_ticket(client.operator_account(), call, buyer, chain_id=client.chain_id())
    row = OrderTicket.objects.create(
        listing=listing,
        buyer=user,
        buyer_address=buyer,
        nonce=nonce,
        epsilon_units=call.epsilon,
        delta_units=call.delta,
        algorithm_hash="0x" + algorithm_hash_bytes.hex(),
        price_units=call.price,
        expires_at=datetime.fromtimestamp(expiry, tz=UTC),
        signature="0x" + signature.hex(),
    )
    return IssuedTicket(row=row, call=call, signature=signature)


def published_listing(dataset: Dataset) -> ChainListing:
    listing = ChainListing.objects.filter(dataset=dataset).first()
    if listing is None or listing.state != ChainListing.State.PUBLISHED:
        raise Conflict("This dataset is not published on chain yet.", code="not_on_chain")
    return listing


def budget_checks(dataset: Dataset, listing: ChainListing, datatoken: Datatoken, epsilon: Decimal, delta: float) -> int:
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
    delta_left = datatoken.delta_left()
    if delta_to_units(delta) > delta_left:
        raise Conflict(
            f"The dataset's cumulative delta budget has {units_to_delta(delta_left):e} left on chain; "
            f"this job asks for {delta:e}.",
            code="budget_exhausted",
            extra={"delta_left": format(units_to_delta(delta_left), "e")},
        )
    return left


def order_quote(
    *, user: User, dataset: Dataset, epsilon: Decimal, delta: float, algorithm_hash_hex: str, wallet_address: str | None
) -> Quote:
    """What an order would cost and whether the wallet can pay it, before anything is sent."""
    listing = published_listing(dataset)
    w3 = client.web3()
    datatoken = Datatoken(w3, listing.datatoken_address)
    problems: list[dict[str, str]] = []
    epsilon_left = datatoken.epsilon_left()
    try:
        budget_checks(dataset, listing, datatoken, epsilon, delta)
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
    if (
        is_managed
        and price_units
        and w3.eth.get_balance(Web3.to_checksum_address(address)) < ORDER_GAS_ALLOWANCE * w3.eth.gas_price
    ):
        problems.append({"code": "insufficient_gas", "detail": "The wallet has too little ether to pay for gas."})
    # The fee fixed in this dataset's datatoken at publish (the factory's may have changed since).
    fee_units = price_units * datatoken.fee_bps() // 10_000
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
        permit_nonce=token.nonces(address),
        chain_id=client.chain_id(),
        problems=problems,
    )


# --- Own wallets: the buy+order transaction prepared for a wallet the marketplace holds no key of ---


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
    # The operator-signed order ticket inside ``transaction`` (fields and signature), None with a permit to sign.
    ticket: dict[str, Any] | None = None


def permit_typed_data(
    *, token: MockStablecoin, owner: str, spender: str, value: int, nonce: int, deadline: int, chain_id: int
) -> dict[str, Any]:
    """The EIP-2612 permit as EIP-712 typed data (uint256 values as decimal strings, so JSON
    clients in any language keep them exact)."""
    return {
        "types": PERMIT_TYPES,
        "primaryType": "Permit",
        "domain": {
            "name": token.name(),
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


def _own_wallet(user: User, wallet_address: str) -> ChecksumAddress:
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


def _unsigned_transaction(w3: Web3, *, sender: ChecksumAddress, to: str, data: HexStr, chain_id: int) -> dict[str, Any]:
    """The call as an unsigned EIP-1559 transaction with a gas estimate and fee and nonce hints;
    refuses when the node says it would revert or the wallet cannot pay for gas."""
    call: TxParams = {"from": sender, "to": to, "data": data, "value": Wei(0)}
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
    refusal = dataset_orderable(dataset=dataset, user=user)
    if refusal is not None:
        raise refusal.as_error()
    listing = published_listing(dataset)
    address = _own_wallet(user, wallet_address)
    w3 = client.web3()
    datatoken = Datatoken(w3, listing.datatoken_address)
    if not datatoken.ordering_open():
        raise Conflict("Ordering of this dataset is closed on chain.", code="ordering_closed")
    epsilon, delta = Decimal(epsilon), float(delta)
    budget_checks(dataset, listing, datatoken, epsilon, delta)
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

    def ticket() -> IssuedTicket:
        issued = ticket_issue(
            user=user,
            listing=listing,
            datatoken=datatoken,
            buyer_address=address,
            epsilon_units=epsilon_to_units(epsilon),
            delta_units=delta_to_units(delta),
            algorithm_hash_bytes=algo,
            price_units=price_units,
        )
        step["ticket"] = issued.as_json()
        return issued

    step: dict[str, Any] = {"permit": None, "deadline": None, "transaction": None, "ticket": None}
    if not price_units:
        issued = ticket()
        data = datatoken.dispense_and_order_data(ticket=issued.call, signature=issued.signature)
        step["transaction"] = _unsigned_transaction(
            w3, sender=address, to=datatoken.address, data=data, chain_id=chain_id
        )
    else:
        # The permit's nonce from the pending state: a permit signed while another is in the mempool holds.
        nonce = token.nonces(address, block_identifier="pending")
        now = chain_now(w3)
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
            issued = ticket()
            data = datatoken.buy_and_order_data(
                ticket=issued.call, signature=issued.signature, permit=(deadline, v, r, s)
            )
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
