"""The outgoing-transaction queue's front: a service records a transaction to send
(:func:`transaction_enqueue`) and reads receipts; :mod:`chain.services.transactions` signs, sends and
follows it. Services that ask for transactions import this module only, so the follower can name
their settlement handlers in one table without an import circle."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from chain import client
from chain.models import ChainTransaction
from common.tasks import enqueue


class TransientChainError(Exception):
    """The node could not be reached or answered oddly; the task retries later."""


class SendRefused(Exception):
    """Raised by a purpose's prepare step (``transactions.PREPARE``) when the transaction must not be
    signed after all; the transaction fails with this message and its settlement handler runs."""


def transaction_enqueue(
    *,
    purpose: str,
    sender: str,
    to: str,
    data: str = "0x",
    value: int = 0,
    dataset: Any = None,
    order: Any = None,
    context: dict | None = None,
) -> ChainTransaction:
    """Record a transaction to send; a task sends it after the surrounding DB transaction commits."""
    tx = ChainTransaction.objects.create(
        chain_id=client.chain_id(),
        purpose=purpose,
        sender=Web3.to_checksum_address(sender),
        to=Web3.to_checksum_address(to),
        data=data,
        value=value,
        dataset=dataset,
        order=order,
        context=context or {},
    )
    enqueue("chain.tasks.transaction_send_task", tx.pk)
    return tx


def _receipt(w3: Web3, tx_hash: str) -> TxReceipt | None:
    try:
        return w3.eth.get_transaction_receipt(HexStr(tx_hash))
    except TransactionNotFound:
        return None


def confirmed_receipt(tx_hash: str) -> TxReceipt | None:
    """The receipt of ``tx_hash`` once it is buried under ``CHAIN_CONFIRMATIONS`` blocks, else None."""
    w3 = client.web3()
    receipt = _receipt(w3, tx_hash)
    if receipt is not None and w3.eth.block_number - receipt["blockNumber"] + 1 >= settings.CHAIN_CONFIRMATIONS:
        return receipt
    return None


def poll(done: Callable[[], bool], *, max_wait_seconds: float) -> bool:
    """Call ``done`` every ``CHAIN_RECEIPT_POLL_SECONDS`` until it is true (True) or time runs out (False)."""
    deadline = time.monotonic() + max_wait_seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(settings.CHAIN_RECEIPT_POLL_SECONDS)
    return True
