"""A settlement the chain dropped after it was sent (anvil rolled back past the block that mined it)
is noticed by the transactions resume task and sent again, after the order is read back from the
chain right before signing: the buyer is refunded once, and a refund whose order went with the
rollback is never sent to whatever order now holds its id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chain import tasks as chain_tasks
from chain.models import ChainTransaction, Order, Wallet
from chain.services import transactions as tx_services
from chain.wrappers import Datatoken, MockStablecoin
from compute_to_data import tasks
from tests.compute_to_data.support import job_submit, listed_on_chain

pytestmark = [pytest.mark.chain, pytest.mark.django_db(transaction=True)]


def _managed(user) -> str:
    return Wallet.objects.get(user=user, kind=Wallet.Kind.MANAGED).address


def _cancel_with_the_refund_unfollowed(api, monkeypatch, buyer, job) -> ChainTransaction:
    """The buyer cancels; the refund is signed, broadcast and mined, but no follower sees its receipt."""
    with monkeypatch.context() as m:
        m.setattr(chain_tasks.transaction_follow_task, "delay", lambda tx_id: None)
        api.force_authenticate(buyer)
        assert api.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 202
    refund = ChainTransaction.objects.get(purpose=ChainTransaction.Purpose.REFUND)
    assert refund.status == ChainTransaction.Status.SENT and refund.tx_hash
    return refund


def test_a_refund_the_rollback_dropped_is_sent_again_and_refunds_the_buyer_once(api, people, on_chain, monkeypatch):
    chain = on_chain
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    token = MockStablecoin(chain.w3, chain.usdc.address)
    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)
    before = token.balance_of(_managed(buyer))
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.5})
    order = Order.objects.get(pk=job["order"])
    paid = token.balance_of(_managed(buyer))
    assert paid < before
    after_order = chain.node.snapshot()
    refund = _cancel_with_the_refund_unfollowed(api, monkeypatch, buyer, job)
    dropped_hash = refund.tx_hash
    chain.node.revert(after_order)  # the refund's block is gone; the order is still there
    assert token.balance_of(_managed(buyer)) == paid
    datatoken = Datatoken(chain.w3, order.listing.datatoken_address)
    assert datatoken.order(order.chain_order_id).status == "open"

    # Unknown to the node for less than the grace period, with its nonce not used: not yet dropped.
    assert tx_services.transaction_resend_if_dropped(refund.pk) is False
    ChainTransaction.objects.filter(pk=refund.pk).update(updated_at=timezone.now() - timedelta(minutes=3))
    assert chain_tasks.transactions_resume_task() == 1

    refund.refresh_from_db()
    assert refund.status == ChainTransaction.Status.MINED, refund.error
    # Signed again (the same nonce and fees may give the same hash) and broadcast a second time.
    assert refund.context["dropped"] == [dropped_hash] and refund.attempts == 2
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and datatoken.order(order.chain_order_id).status == "refunded"
    assert token.balance_of(_managed(buyer)) == before, "refunded once, in full"
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["settlement"] == "refund" and job["order_status"] == "refunded", job
    # Nothing left to resend: the next pass leaves the mined refund alone.
    ChainTransaction.objects.filter(pk=refund.pk).update(updated_at=timezone.now() - timedelta(minutes=3))
    assert tx_services.transaction_resend_if_dropped(refund.pk) is False


def test_a_dropped_refund_whose_order_went_with_the_rollback_is_not_sent_again(
    api, people, on_chain, accounts, monkeypatch
):
    chain = on_chain
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    token = MockStablecoin(chain.w3, chain.usdc.address)
    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)
    before = token.balance_of(_managed(buyer))
    before_order = chain.node.snapshot()
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.5})
    refund = _cancel_with_the_refund_unfollowed(api, monkeypatch, buyer, job)
    chain.node.revert(before_order)  # the order, its payment and the refund are all gone
    # The operator's next transaction takes the dropped refund's nonce: dropped without waiting.
    operator = accounts.operator
    signed = operator.sign_transaction(
        {
            "to": operator.address,
            "value": 0,
            "gas": 21_000,
            "gasPrice": chain.w3.eth.gas_price * 2,
            "nonce": chain.w3.eth.get_transaction_count(operator.address),
            "chainId": chain.w3.eth.chain_id,
        }
    )
    chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    nonce = chain.w3.eth.get_transaction_count(operator.address)
    assert nonce > refund.nonce

    assert tx_services.transaction_resend_if_dropped(refund.pk) is True
    refund.refresh_from_db()
    # Read back right before signing: the order is not on chain, so nothing was signed or sent.
    assert refund.status == ChainTransaction.Status.FAILED and "rolled back" in refund.error, refund.error
    assert chain.w3.eth.get_transaction_count(operator.address) == nonce
    order = Order.objects.get(pk=job["order"])
    assert order.status == Order.Status.VANISHED and "rolled back" in order.error
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["settlement"] == "vanished" and job["order_status"] == "vanished", job
    assert token.balance_of(_managed(buyer)) == before, "the rolled-back payment was never taken"
