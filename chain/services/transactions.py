"""Outgoing transactions: recorded as rows, then signed, sent and followed by Celery tasks.

A web request only calls :func:`transaction_enqueue`; it never waits for a receipt. The sender
hands out nonces per account under a row lock (so two workers never reuse one), estimates gas
before taking a nonce (a call that would revert fails with the contract's reason and leaves no
nonce gap), and retries transient node errors. :func:`transaction_follow` waits for the receipt
and the configured confirmations, then tells the service that asked for the transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import Nonce, TxParams, Wei

from chain import client
from chain.models import AccountNonce, ChainTransaction
from chain.revert import revert_message
from chain.services import publishing
from chain.services.orders import placing, settlement
from chain.services.outbox import (
    SendRefused,
    TransientChainError,
    _receipt,
    confirmed_receipt,
    poll,
    transaction_enqueue,
)
from chain.services.wallets import wallet_signer
from common.tasks import enqueue

__all__ = ["TransientChainError", "confirmed_receipt", "poll", "transaction_enqueue"]

logger = logging.getLogger(__name__)

# What happens once a transaction is mined (or failed) and confirmed, per purpose: one explicit
# table, so a reader sees every settlement here (a faucet transfer needs nothing).
ON_SETTLED: dict[str, Callable[[ChainTransaction, Any], None]] = {
    ChainTransaction.Purpose.PUBLISH: publishing.publish_settled,
    ChainTransaction.Purpose.ORDERING_FLAG: publishing.ordering_flag_settled,
    ChainTransaction.Purpose.ORDER: placing.order_tx_settled,
    ChainTransaction.Purpose.RECEIPT: settlement.receipt_settled,
    ChainTransaction.Purpose.REFUND: settlement.refund_settled,
    ChainTransaction.Purpose.RECLAIM: settlement.reclaim_settled,
    ChainTransaction.Purpose.WITHDRAW: settlement.withdraw_settled,
}
# Fresh call data built just before signing, per purpose (an order's permit depends on the nonce).
PREPARE: dict[str, Callable[[ChainTransaction, LocalAccount, list[ChainTransaction]], str]] = {
    ChainTransaction.Purpose.ORDER: placing.order_tx_prepare,
    ChainTransaction.Purpose.RECEIPT: settlement.settlement_tx_prepare,
    ChainTransaction.Purpose.REFUND: settlement.settlement_tx_prepare,
    ChainTransaction.Purpose.WITHDRAW: settlement.withdraw_tx_prepare,
}
# Sent transactions the chain may drop (a rollback, a node restarted without its pool) that are sent
# again once the node no longer knows them: the operator's settlements, which re-read the order on
# chain right before they are signed again. A buyer's or an owner's own transaction is left to them.
RESENDABLE = frozenset({ChainTransaction.Purpose.RECEIPT, ChainTransaction.Purpose.REFUND})
# How long a sent transaction may be unknown to the node (and its nonce not yet used) before it
# counts as dropped: a node behind a load balancer may not have seen it yet.
DROPPED_GRACE = timedelta(minutes=2)


def _signer(address: str) -> LocalAccount:
    operator = client.operator_account() if settings.CHAIN_OPERATOR_KEY else None
    if operator is not None and operator.address == address:
        return operator
    return wallet_signer(address=address)


def _fail(tx: ChainTransaction, error: str) -> None:
    tx.status = ChainTransaction.Status.FAILED
    tx.error = error[:2000]
    tx.save(update_fields=["status", "error", "updated_at"])
    handler = ON_SETTLED.get(tx.purpose)
    if handler:
        handler(tx, None)


def transaction_give_up(tx_id: int, error: str) -> None:
    """Fail a transaction that was never broadcast; one that may have been is left to the follower."""
    with transaction.atomic():
        tx = ChainTransaction.objects.select_for_update().get(pk=tx_id)
        if tx.status == ChainTransaction.Status.PENDING and not tx.tx_hash:
            _fail(tx, error)


def _next_nonce(w3: Web3, row: AccountNonce) -> int:
    """The next nonce for ``row``'s address; call with ``row`` locked (SELECT ... FOR UPDATE).

    The node's pending count covers every broadcast transaction; on top of it come ours that are
    signed but not broadcast yet. Nothing else is remembered, so a node that dropped transactions,
    or a development chain started afresh, never leaves a gap. The ``AccountNonce`` row is the lock
    that keeps two workers from signing for one address at once."""
    chain_id, address = row.chain_id, row.address
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending")
    unbroadcast = (
        ChainTransaction.objects.filter(
            chain_id=chain_id, sender=address, status=ChainTransaction.Status.PENDING, nonce__gte=nonce
        )
        .exclude(tx_hash="")
        .aggregate(highest=models.Max("nonce"))["highest"]
    )
    if unbroadcast is not None:
        nonce = unbroadcast + 1
    row.next_nonce = nonce + 1
    row.save(update_fields=["next_nonce"])
    return nonce


# Gas limit of a transaction signed behind others of the same sender that are not broadcast yet.
UNESTIMATED_GAS = 500_000


def unmined_ahead(w3: Web3, tx: ChainTransaction) -> list[ChainTransaction]:
    """The sender's other transactions that are signed but not mined yet (not broadcast, or in the
    mempool): the node's latest state does not include them."""
    candidates = (
        ChainTransaction.objects.filter(
            chain_id=tx.chain_id,
            sender=tx.sender,
            status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT],
        )
        .exclude(tx_hash="")
        .exclude(pk=tx.pk)
    )
    return [c for c in candidates if c.status == ChainTransaction.Status.PENDING or _receipt(w3, c.tx_hash) is None]


def _call(tx: ChainTransaction) -> TxParams:
    """The call ``tx`` makes, as estimated, signed and replayed."""
    return {"from": tx.sender, "to": tx.to, "data": HexStr(tx.data), "value": Wei(int(tx.value))}


def _sign(w3: Web3, tx: ChainTransaction) -> bool:
    """Prepare, estimate, take a nonce and sign; the caller holds the row lock. False when the
    transaction failed instead (the call would revert)."""
    signer = _signer(tx.sender)
    # One signer per address at a time, from preparing the call data (a permit's nonce depends on
    # the transactions ahead) to taking the nonce.
    lock, _ = AccountNonce.objects.select_for_update().get_or_create(chain_id=tx.chain_id, address=tx.sender)
    ahead = unmined_ahead(w3, tx)
    if tx.purpose in PREPARE:
        try:
            tx.data = PREPARE[tx.purpose](tx, signer, ahead)
        except SendRefused as exc:
            _fail(tx, str(exc))
            return False
    call = _call(tx)
    if ahead:
        # The node cannot simulate this call on top of our transactions still waiting to be mined
        # (a permit would look replayed): give it a fixed allowance instead of an estimate.
        tx.gas = UNESTIMATED_GAS
    else:
        try:
            # Estimated before a nonce is taken: a call that would revert leaves no gap.
            tx.gas = int(w3.eth.estimate_gas(call) * 1.25) + 10_000
        except (ContractCustomError, ContractLogicError) as exc:
            _fail(tx, revert_message(exc))
            return False
    tx.nonce = _next_nonce(w3, lock)
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas") or 0)
    priority = int(w3.eth.max_priority_fee)
    fields: TxParams = {
        **call,
        "chainId": tx.chain_id,
        "nonce": Nonce(tx.nonce),
        "gas": tx.gas,
        "maxFeePerGas": Wei(2 * base_fee + priority),
        "maxPriorityFeePerGas": Wei(priority),
    }
    # eth-account types the same transaction fields as a plain dict.
    signed = signer.sign_transaction(cast(TransactionDictType, fields))
    tx.tx_hash = signed.hash.to_0x_hex()
    tx.context = {**tx.context, "raw": "0x" + bytes(signed.raw_transaction).hex()}
    tx.save(update_fields=["data", "gas", "nonce", "tx_hash", "context", "updated_at"])
    return True


def transaction_send(tx_id: int) -> ChainTransaction:
    """Sign and broadcast a pending transaction. Safe to run twice: a sent one is left alone.

    The signed transaction (nonce, hash, raw bytes) is committed before it is broadcast, so a
    worker that dies in between re-broadcasts the same transaction rather than a second one."""
    w3 = client.web3()
    with transaction.atomic():
        tx = ChainTransaction.objects.select_for_update().get(pk=tx_id)
        if tx.status != ChainTransaction.Status.PENDING:
            return tx
        if not tx.tx_hash and not _sign(w3, tx):
            return tx
        tx.attempts += 1
        tx.save(update_fields=["attempts", "updated_at"])
    try:
        w3.eth.send_raw_transaction(tx.context["raw"])
    except (ValueError, Web3RPCError) as exc:
        message = str(exc).lower()
        if "nonce too low" in message and _receipt(w3, tx.tx_hash) is None:
            # Another transaction took the nonce: sign this one again with a fresh one.
            ChainTransaction.objects.filter(pk=tx.pk).update(nonce=None, tx_hash="", gas=None)
            raise TransientChainError(f"nonce too low for {tx.sender}; signing again") from exc
        if "insufficient funds" in message:
            with transaction.atomic():
                _fail(
                    ChainTransaction.objects.select_for_update().get(pk=tx.pk),
                    f"The wallet {tx.sender} has too little ether to pay for gas.",
                )
            return tx
        if not ("already known" in message or "already imported" in message or "nonce too low" in message):
            raise
    ChainTransaction.objects.filter(pk=tx.pk, status=ChainTransaction.Status.PENDING).update(
        status=ChainTransaction.Status.SENT
    )
    tx.status = ChainTransaction.Status.SENT
    enqueue("chain.tasks.transaction_follow_task", tx.pk)
    return tx


def transaction_resend_if_dropped(tx_id: int, *, grace: timedelta = DROPPED_GRACE) -> bool:
    """Send a settlement again when the chain dropped it; True when it was queued to be sent again.

    A sent transaction is dropped when the node has no receipt of it, does not hold it in its pool,
    and either its sender's nonce is already past it (another transaction took the nonce) or it has
    been unknown for ``grace``. It goes back to ``pending`` with no hash or nonce (the old hash is
    kept in ``context["dropped"]``) and is signed afresh, after its prepare step re-read the order on
    chain. Without this a rolled-back settlement stayed ``sent`` for ever and its job unsettled."""
    w3 = client.web3()
    with transaction.atomic():
        tx = ChainTransaction.objects.select_for_update().get(pk=tx_id)
        if tx.status != ChainTransaction.Status.SENT or tx.purpose not in RESENDABLE or not tx.tx_hash:
            return False
        # The nonce first: mined at that nonce before the receipt is read means another transaction's.
        nonce_past = (
            tx.nonce is not None
            and w3.eth.get_transaction_count(Web3.to_checksum_address(tx.sender), "latest") > tx.nonce
        )
        if _receipt(w3, tx.tx_hash) is not None:
            return False  # mined: the follower settles it
        try:
            w3.eth.get_transaction(HexStr(tx.tx_hash))
            return False  # still in the pool
        except TransactionNotFound:
            pass
        if not nonce_past and tx.updated_at > timezone.now() - grace:
            return False
        logger.warning(
            "Transaction %s (%s, order %s) was dropped by the chain (%s); sending it again.",
            tx.tx_hash,
            tx.purpose,
            tx.order_id,
            "its nonce was used by another transaction" if nonce_past else "unknown to the node",
        )
        context = {k: v for k, v in tx.context.items() if k != "raw"}
        context["dropped"] = [*tx.context.get("dropped", []), tx.tx_hash]
        tx.status, tx.tx_hash, tx.nonce, tx.gas, tx.context = ChainTransaction.Status.PENDING, "", None, None, context
        tx.save(update_fields=["status", "tx_hash", "nonce", "gas", "context", "updated_at"])
        enqueue("chain.tasks.transaction_send_task", tx_id)
    return True


def transaction_follow(tx_id: int, *, max_wait_seconds: float = 30.0) -> bool:
    """Wait for a sent transaction's receipt and ``CHAIN_CONFIRMATIONS`` blocks, then settle it.

    Returns True once settled (mined or failed), False if it is still waiting after
    ``max_wait_seconds`` (the task then schedules another look)."""
    tx = ChainTransaction.objects.get(pk=tx_id)
    if tx.status in (ChainTransaction.Status.MINED, ChainTransaction.Status.FAILED):
        return True
    if tx.status != ChainTransaction.Status.SENT:
        return False

    def settled() -> bool:
        receipt = confirmed_receipt(tx.tx_hash)
        if receipt is not None:
            _settle(tx, receipt)
        return receipt is not None

    return poll(settled, max_wait_seconds=max_wait_seconds)


def _settle(tx: ChainTransaction, receipt: Any) -> None:
    with transaction.atomic():
        locked = ChainTransaction.objects.select_for_update().get(pk=tx.pk)
        if locked.status != ChainTransaction.Status.SENT:
            return
        locked.block_number = receipt["blockNumber"]
        locked.gas_used = receipt["gasUsed"]
        if receipt["status"] == 1:
            locked.status = ChainTransaction.Status.MINED
        else:
            locked.status = ChainTransaction.Status.FAILED
            locked.error = _revert_reason(locked, receipt)
        locked.save(update_fields=["block_number", "gas_used", "status", "error", "updated_at"])
        handler = ON_SETTLED.get(locked.purpose)
        if handler:
            handler(locked, receipt if locked.status == ChainTransaction.Status.MINED else None)


def _revert_reason(tx: ChainTransaction, receipt: Any) -> str:
    """Replay the call at its block to learn why it reverted."""
    try:
        client.web3().eth.call(_call(tx), receipt["blockNumber"] - 1)
    except (ContractCustomError, ContractLogicError) as exc:
        return revert_message(exc)
    except Exception as exc:  # the replay is best effort
        logger.info("could not replay reverted transaction %s: %s", tx.tx_hash, exc)
    return "The transaction reverted on chain."
