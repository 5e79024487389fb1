"""A chain that rolls back (anvil reverted to an older state, as after a restart from an old state
file) and reuses order ids: settlement reads the order back from the chain before it sends
anything, a job whose payment vanished says so and is never charged twice, a new order that now
holds the id is accepted, and the indexer follows reorgs by block hash (blocks without events too)."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from chain.models import ChainEvent, ChainTransaction, IndexerCursor, Order, Wallet
from chain.services import orders as order_services
from chain.services.indexer import indexer_run
from chain.wrappers import Datatoken, MockStablecoin
from compute_to_data import tasks
from compute_to_data.models import ComputeJob
from compute_to_data.services import jobs as job_services
from tests.chain.support import FREE, dispense, known_buyer, listing_for, provider_user  # noqa: F401 - provider_user: a fixture
from tests.compute_to_data.support import job_submit, listed_on_chain

pytestmark = [pytest.mark.chain, pytest.mark.django_db(transaction=True)]


def _managed(user) -> str:
    return Wallet.objects.get(user=user, kind=Wallet.Kind.MANAGED).address


def test_settlement_reads_the_order_back_and_never_pays_the_order_that_reused_its_id(
    api, people, on_chain, monkeypatch
):
    chain, acc = on_chain, on_chain.accounts
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    token = MockStablecoin(chain.w3, chain.usdc.address)
    before = token.balance_of(_managed(buyer))
    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)
    before_order = chain.node.snapshot()
    job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.5})
    order = Order.objects.get(pk=job["order"])
    assert job["status"] == "queued" and order.chain_order_id is not None
    order_id = order.chain_order_id

    chain.node.revert(before_order)  # the chain forgets the order (and the payment) ...
    datatoken = chain.contract("Datatoken", order.listing.datatoken_address)
    from tests.chain.conftest import Dataset as ChainDataset

    other = ChainDataset(nft=None, datatoken=datatoken, owner=acc.provider, params={}, receipt=None)
    # ... and another order takes its id (a ticket with the same nonce: the marketplace never issues
    # one twice, but the chain alone would allow it).
    reused, _ = chain.buy(other, acc.buyer2, epsilon=300_000, nonce=order_id)
    assert reused == order_id

    # The buyer cancels: the refund would go to buyer2's order, so settlement reads it back first.
    api.force_authenticate(buyer)
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 202
    job = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert job["status"] == "cancelled" and job["budget_state"] == "released"
    assert job["settlement"] == "vanished" and job["order_status"] == "vanished", job
    assert not ChainTransaction.objects.filter(purpose__in=["refund", "receipt"]).exists(), "nothing was sent"
    held = Datatoken(chain.w3, datatoken.address).order(order_id)
    assert held.status == "open", "buyer2's order is untouched"
    assert token.balance_of(_managed(buyer)) == before, "the rolled-back payment was never taken"
    order.refresh_from_db()
    assert order.chain_order_id is None and "rolled back" in order.error
    # The job page says it in a sentence; a second settlement does nothing.
    from django.test import Client

    client = Client()
    client.force_login(buyer)
    page = client.get(f"/jobs/{job['id']}/").content.decode()
    assert "the chain no longer holds the payment (it was rolled back), so nothing was charged" in page
    assert job_services.job_settle(job_id=job["id"]) == "nothing to settle"


def test_a_new_order_that_holds_a_rolled_back_id_is_accepted_and_the_old_job_fails_clearly(
    api, people, on_chain, monkeypatch
):
    from chain.faucet import fund_address
    from chain.services.wallets import wallet_managed_get_or_create
    from tests.factories import UserFactory

    chain = on_chain
    provider, buyer, staff = people
    dataset = listed_on_chain(api, provider, staff)
    second = UserFactory(username="second-buyer")
    fund_address(chain.w3, chain.deployment, wallet_managed_get_or_create(user=second).address)
    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)
    snapshot = chain.node.snapshot()
    first_job = job_submit(api, buyer, dataset, "dp-statistics", {"epsilon": 0.5})
    first_id = first_job["chain_order_id"]
    assert first_id is not None
    chain.node.revert(snapshot)

    # A ticket nonce is never issued twice (contracts v2: the id is the nonce), so the second
    # buyer's order on the rolled-back chain has an id of its own and is accepted.
    second_job = job_submit(api, second, dataset, "dp-statistics", {"epsilon": 0.4})
    assert second_job["status"] == "queued" and second_job["chain_order_id"] not in (None, first_id), second_job
    # The first job's payment is gone: when it is settled (here the buyer cancels it) its order is
    # read back, and the job ends released, with a clear sentence.
    api.force_authenticate(buyer)
    assert api.post(f"/api/v1/jobs/{first_job['id']}/cancel/").status_code == 202
    first_job = api.get(f"/api/v1/jobs/{first_job['id']}/").json()
    assert first_job["status"] == "cancelled" and first_job["order_status"] == "vanished", first_job
    assert first_job["budget_state"] == "released" and first_job["settlement"] == "vanished"
    # Refunding the second job's order refunds the second buyer, on its own order.
    token = MockStablecoin(chain.w3, chain.usdc.address)
    paid = token.balance_of(_managed(second))
    api.force_authenticate(second)
    assert api.post(f"/api/v1/jobs/{second_job['id']}/cancel/").status_code == 202
    assert api.get(f"/api/v1/jobs/{second_job['id']}/").json()["order_status"] == "refunded"
    assert token.balance_of(_managed(second)) > paid
    assert ComputeJob.objects.get(pk=first_job["id"]).order.status == Order.Status.VANISHED


def test_the_indexer_follows_a_rollback_by_block_hash(on_chain, provider_user):  # noqa: F811
    chain, acc = on_chain, on_chain.accounts
    listing = listing_for(chain, provider_user)
    known_buyer(chain)
    ds = chain.publish(metadataHash=keccak(text="metadata v1"), **FREE)
    indexer_run()
    before_order = chain.node.snapshot()
    first_id, first_tx = dispense(chain, ds, acc.buyer, epsilon=250_000)
    chain.node.mine(2)
    indexer_run()
    cursor = IndexerCursor.objects.get()
    assert cursor.last_block == chain.w3.eth.block_number
    assert cursor.last_block_hash == chain.w3.eth.get_block(cursor.last_block)["hash"].to_0x_hex()
    assert Order.objects.get(listing=listing, chain_order_id=first_id).consumer_address == acc.buyer.address

    # Rolled back, and grown past the cursor with other blocks: the same height, another hash.
    chain.node.revert(before_order)
    reused, second_tx = dispense(chain, ds, acc.buyer2, epsilon=100_000, nonce=first_id)
    chain.node.mine(4)
    assert reused == first_id and chain.w3.eth.block_number > cursor.last_block

    stats = indexer_run()

    assert stats.reset is True and stats.dropped == 1 and stats.events == 1
    orders = list(Order.objects.filter(listing=listing))
    assert [(o.chain_order_id, o.consumer_address, o.tx_hash) for o in orders] == [
        (first_id, acc.buyer2.address, second_tx)
    ]
    assert not ChainEvent.objects.filter(tx_hash=first_tx).exists()
    listing.refresh_from_db()
    assert listing.epsilon_ordered_units == 100_000 == ds.datatoken.functions.epsilonOrdered().call()

    # A reorg of blocks without any event: noticed by the cursor's hash, nothing else dropped.
    before_empty = chain.node.snapshot()
    chain.node.mine(2)
    indexer_run()
    tip = IndexerCursor.objects.get()
    chain.node.revert(before_empty)
    chain.node.rpc("evm_mine", [chain.w3.eth.get_block("latest")["timestamp"] + 1000])
    chain.node.rpc("evm_mine", [chain.w3.eth.get_block("latest")["timestamp"] + 1000])
    assert chain.w3.eth.get_block(tip.last_block)["hash"].to_0x_hex() != tip.last_block_hash
    stats = indexer_run()
    assert stats.reset is True and stats.dropped == 0
    assert IndexerCursor.objects.get().last_block_hash == chain.w3.eth.get_block("latest")["hash"].to_0x_hex()
    assert Order.objects.filter(listing=listing).count() == 1

    # A refund the chain dropped puts the order back to confirmed (its settlement goes out again).
    before_refund = chain.node.snapshot()
    started = ChainEvent.objects.get(tx_hash=second_tx, name="OrderStarted").args
    chain.tx(acc.operator, ds.datatoken.functions.refund(first_id, chain.terms(started)))
    indexer_run()
    assert Order.objects.get(listing=listing).status == Order.Status.REFUNDED
    chain.node.revert(before_refund)
    chain.node.rpc("evm_mine", [chain.w3.eth.get_block("latest")["timestamp"] + 1000])
    chain.node.mine(2)
    stats = indexer_run()
    assert stats.dropped == 1
    order = Order.objects.get(listing=listing)
    assert order.status == Order.Status.CONFIRMED and order.settled_at is None
    assert order_services.order_chain_mismatch(order=order) == ""
    assert indexer_run().reset is False
