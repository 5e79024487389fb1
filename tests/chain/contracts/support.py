"""What the datatoken tests share: the hashes a receipt records, an order with the terms settlement
presents again (contracts v2), and the operator's receipt and refund calls."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

HASHES = {
    "datasetHash": keccak(text="dataset"),
    "algorithmHash": keccak(text="algorithm"),
    "paramsHash": keccak(text="params"),
    "resultHash": keccak(text="result"),
}


def order(chain, dataset, buyer, **kwargs: Any) -> tuple[int, tuple]:
    """Buy and order (with a ticket); (order id, the Order tuple from its OrderStarted)."""
    order_id, receipt = chain.buy(dataset, buyer, **kwargs)
    return order_id, chain.terms(chain.started(dataset, receipt))


def dispensed(chain, dataset, buyer, **ticket: Any) -> tuple[int, tuple]:
    """A free dataset's order (with a ticket); (order id, Order tuple)."""
    signed, signature = chain.ticket(dataset, buyer, **{"price": 0, "delta": 0, **ticket})
    receipt = chain.tx(buyer, dataset.datatoken.functions.dispenseAndOrder(signed.as_tuple(), signature))
    return signed.nonce, chain.terms(chain.started(dataset, receipt))


def receipt_fn(dt, order_id, terms):
    h = HASHES
    return dt.functions.recordReceipt(
        order_id, terms, h["datasetHash"], h["algorithmHash"], h["paramsHash"], h["resultHash"]
    )


def refund_fn(dt, order_id, terms):
    return dt.functions.refund(order_id, terms)


def set_fee(chain, fee_bps: int, collector: str) -> None:
    """Change the factory's fee as v2 allows: the owner proposes, anyone applies after the delay."""
    chain.tx(chain.accounts.deployer, chain.factory.functions.proposeFee(fee_bps, collector))
    chain.increase_time(chain.factory.functions.parameterDelay().call())
    chain.tx(chain.accounts.stranger, chain.factory.functions.applyFee())


def withdraw_all(chain, dt, *accounts: str) -> None:
    """Pay out every account's credits on ``dt`` (anyone may send a withdrawal)."""
    for account in accounts:
        if dt.functions.credits(account).call():
            chain.tx(chain.accounts.stranger, dt.functions.withdraw(account))
