"""Celery tasks of the chain: they take ids, call one service, and are safe to run twice."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TypedDict

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from chain.client import ChainUnavailable
from chain.models import ChainListing, ChainTransaction, Order
from chain.services import transactions as tx_services
from chain.services.transactions import TransientChainError

logger = logging.getLogger(__name__)


class _RetryOptions(TypedDict):
    """The retry keywords of ``shared_task`` every chain task shares."""

    autoretry_for: tuple[type[Exception], ...]
    retry_backoff: int
    retry_backoff_max: int


_RETRY: _RetryOptions = {
    "autoretry_for": (TransientChainError, ChainUnavailable, OperationalError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
}


@shared_task(max_retries=20, **_RETRY)
def transaction_send_task(tx_id: int) -> None:
    try:
        tx_services.transaction_send(tx_id)
    except (TransientChainError, ChainUnavailable, OperationalError):
        raise  # retried with backoff
    except Exception as exc:
        # Anything else will not get better by retrying: fail the transaction (and what waits on it) loudly.
        logger.exception("sending transaction %s failed", tx_id)
        tx_services.transaction_give_up(tx_id, f"Could not send the transaction: {exc}")


@shared_task(bind=True, max_retries=None, **_RETRY)
def transaction_follow_task(self, tx_id: int) -> None:
    if not tx_services.transaction_follow(tx_id, max_wait_seconds=20):
        tx = ChainTransaction.objects.get(pk=tx_id)
        if tx.updated_at < timezone.now() - timedelta(hours=6):
            tx_services._fail(tx, "No receipt after 6 hours; the transaction was dropped by the network.")
            return
        raise self.retry(countdown=5)


@shared_task(bind=True, max_retries=None, **_RETRY)
def order_verify_task(self, order_id: int) -> None:
    from chain.services.orders.verification import order_verify

    if not order_verify(order_id, max_wait_seconds=20):
        raise self.retry(countdown=5)


@shared_task(bind=True, max_retries=None, **_RETRY)
def listing_verify_task(self, listing_id: int) -> None:
    from chain.services.publishing import listing_verify

    if not listing_verify(listing_id, max_wait_seconds=20):
        raise self.retry(countdown=5)


@shared_task(**_RETRY, max_retries=3)
def indexer_run_task() -> None:
    from chain.services.indexer import indexer_run

    try:
        indexer_run()
    except ChainUnavailable as exc:
        logger.info("indexer skipped: %s", exc.operator_detail)


def _resent(tx_id: int) -> bool:
    try:
        return tx_services.transaction_resend_if_dropped(tx_id)
    except (ChainUnavailable, OperationalError) as exc:
        logger.info("transaction %s: could not ask the node whether it was dropped: %s", tx_id, exc)
        return False


@shared_task
def transactions_resume_task() -> int:
    """Re-enqueue transactions whose worker died between recording and settling them, and send
    again the settlements the chain dropped (a rollback): those would otherwise stay ``sent``."""
    stale = timezone.now() - timedelta(minutes=2)
    count = 0
    for tx_id, status in ChainTransaction.objects.filter(
        status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT], updated_at__lt=stale
    ).values_list("id", "status"):
        if status == ChainTransaction.Status.PENDING:
            transaction_send_task.delay(tx_id)
        elif not _resent(tx_id):
            transaction_follow_task.delay(tx_id)
        count += 1
    for listing_id in (
        ChainListing.objects.filter(state=ChainListing.State.PUBLISHING, created_at__lt=stale)
        .exclude(publish_tx_hash="")
        .values_list("id", flat=True)
    ):
        listing_verify_task.delay(listing_id)
        count += 1
    for order_id in Order.objects.filter(
        status=Order.Status.CONFIRMING, source=Order.Source.EXTERNAL, created_at__lt=stale
    ).values_list("id", flat=True):
        order_verify_task.delay(order_id)
        count += 1
    return count
