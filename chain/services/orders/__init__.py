"""Compute orders, one module per concern: quoted and permitted (:mod:`.quote`), placed
(:mod:`.placing`), verified against the chain (:mod:`.verification`) and settled by the operator
(:mod:`.settlement`). Balance and budget are checked before anything is sent.

The public names are re-exported here, so ``from chain.services import orders`` keeps working."""

from chain.services.orders.placing import order_create, order_get_visible
from chain.services.orders.quote import (
    ORDER_GAS_ALLOWANCE,
    PERMIT_LIFETIME_SECONDS,
    PERMIT_TYPES,
    RELEASE_TEXT,
    PreparedOrder,
    Quote,
    algorithm_hash,
    order_prepare,
    order_quote,
    permit_typed_data,
)
from chain.services.orders.settlement import (
    EXPIRED_TEXT,
    VANISHED_TEXT,
    OrderExpired,
    OrderVanished,
    order_chain_matches,
    order_chain_mismatch,
    order_receipt_record,
    order_reclaim,
    order_reclaim_call,
    order_reclaimable,
    order_refund,
    order_settlement_undo,
    order_vanish,
)
from chain.services.orders.verification import order_verify

__all__ = [
    "EXPIRED_TEXT",
    "OrderExpired",
    "order_reclaim",
    "order_reclaim_call",
    "order_reclaimable",
    "ORDER_GAS_ALLOWANCE",
    "PERMIT_LIFETIME_SECONDS",
    "PERMIT_TYPES",
    "RELEASE_TEXT",
    "VANISHED_TEXT",
    "OrderVanished",
    "PreparedOrder",
    "Quote",
    "algorithm_hash",
    "order_chain_matches",
    "order_chain_mismatch",
    "order_create",
    "order_get_visible",
    "order_prepare",
    "order_quote",
    "order_receipt_record",
    "order_refund",
    "order_settlement_undo",
    "order_vanish",
    "order_verify",
    "permit_typed_data",
]
