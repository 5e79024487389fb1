"""The indexer against a real anvil: events stored once, marketplace rows following them, the
confirmation depth, bounded ranges, and a node restarted on a new chain or from a state file."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from decimal import Decimal

import pytest
from eth_utils import keccak

from chain import client
from chain.deploy import deploy_contracts, write_deployment_file
from chain.models import ChainEvent, ChainListing, IndexerCursor, Order
from chain.services import indexer
from chain.services.indexer import indexer_run
from chain.units import units_to_price
from devtools.node import AnvilNode
from tests.chain.conftest import ALGORITHM, DELTA_1E5, FEE_BPS, Chain, derive_accounts
from tests.chain.support import FREE, dispense, known_buyer, listing_for, provider_user  # noqa: F401 - provider_user: a fixture

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def _point_at(settings, tmp_path, node_url: str, deployment: dict) -> None:
    path = tmp_path / f"deployments-{time.monotonic_ns()}.json"
    write_deployment_file(path, deployment)
    settings.CHAIN_RPC_URL = node_url
    settings.CHAIN_DEPLOYMENT_FILE = str(path)
    client.reset_caches()


@pytest.fixture
def on_chain(chain, settings, tmp_path):
    """The session's anvil (state reverted after the test) as the marketplace's chain, 1 confirmation."""
    settings.CHAIN_CONFIRMATIONS = 1
    settings.CHAIN_INDEXER_BATCH_BLOCKS = 2000
    _point_at(settings, tmp_path, chain.node.rpc_url, chain.deployment)
    yield chain
    client.reset_caches()


def test_publish_and_orders_become_marketplace_rows(on_chain, provider_user):
    chain, acc = on_chain, on_chain.accounts
    listing = listing_for(chain, provider_user)
    user = known_buyer(chain)
    ds = chain.publish(metadataHash=keccak(text="metadata v1"))
    order_1, receipt = chain.buy(ds, acc.buyer, epsilon=500_000)
    order_2, _ = chain.buy(ds, acc.buyer2, epsilon=300_000)

    stats = indexer_run()

    # With the NFT's MetadataUpdated and the operator opening the new (closed) datatoken.
    assert stats.events == 5 and not stats.reset
    listing.refresh_from_db()
    assert listing.state == ChainListing.State.PUBLISHED
    assert (listing.nft_address, listing.datatoken_address) == (ds.nft.address, ds.datatoken.address)
    assert listing.published_at is not None
    assert listing.epsilon_ordered_units == 800_000 == ds.datatoken.functions.epsilonOrdered().call()
    mine = Order.objects.get(listing=listing, chain_order_id=order_1)
    assert mine.buyer == user and mine.dataset_id == listing.dataset_id
    assert mine.source == Order.Source.CHAIN and mine.status == Order.Status.CONFIRMED
    assert mine.consumer_address == acc.buyer.address and mine.tx_hash == receipt["transactionHash"].to_0x_hex()
    assert mine.epsilon == Decimal("0.5") and mine.delta == pytest.approx(1e-5)
    assert mine.amount_units == 12_500_000 and mine.algorithm_hash == "0x" + ALGORITHM.hex()
    stranger_paid = Order.objects.get(listing=listing, chain_order_id=order_2)
    assert stranger_paid.buyer is None and stranger_paid.consumer_address == acc.buyer2.address
    stored = ChainEvent.objects.get(name="OrderStarted", args__orderId=order_1)
    assert stored.address == ds.datatoken.address
    assert stored.args["consumer"] == acc.buyer.address and stored.args["amount"] == 12_500_000


def test_datatokens_published_outside_the_marketplace_are_followed_without_rows(on_chain):
    chain, acc = on_chain, on_chain.accounts
    ds = chain.publish(metadataHash=keccak(text="not ours"), **FREE)
    dispense(chain, ds, acc.buyer)
    indexer_run()
    assert set(ChainEvent.objects.values_list("name", "address")) == {
        ("DatasetPublished", chain.factory.address),
        ("MetadataUpdated", ds.nft.address),
        ("OperatorOrderingDisabled", ds.datatoken.address),
        ("OrderStarted", ds.datatoken.address),
    }
    assert not Order.objects.exists()


def test_events_of_a_datatoken_the_factory_did_not_publish_are_ignored(on_chain):
    chain, acc = on_chain, on_chain.accounts
    # A datatoken with the very same code, published by another factory (whose operator the stranger
    # is, so it can sign the ticket): its OrderStarted is not the marketplace's.
    other = Chain(
        chain.w3,
        chain.node,
        deploy_contracts(chain.w3, acc.stranger, operator=acc.stranger.address, fee_collector=acc.stranger.address),
        replace(acc, operator=acc.stranger),
    )
    checkpoint = chain.w3.eth.block_number
    ds = other.publish(acc.provider, **FREE)
    receipt = dispense(other, ds, acc.buyer)[1]
    assert chain.w3.eth.get_transaction_receipt(receipt)["status"] == 1
    stats = indexer_run()
    assert stats.to_block > checkpoint
    assert not ChainEvent.objects.filter(address__in=[ds.datatoken.address, ds.nft.address]).exists()


def test_replays_store_nothing_twice(on_chain, provider_user):
    chain, acc = on_chain, on_chain.accounts
    listing = listing_for(chain, provider_user, **FREE)
    ds = chain.publish(metadataHash=keccak(text="metadata v1"), **FREE)
    dispense(chain, ds, acc.buyer)
    dispense(chain, ds, acc.buyer2)
    first = indexer_run()
    again = indexer_run()
    assert (first.events, again.events, again.batches) == (5, 0, 0)

    cursor = IndexerCursor.objects.get(chain_id=chain.w3.eth.chain_id)
    cursor.last_block = chain.deployment["deployed_at_block"] - 1  # rewound: everything read again
    cursor.save()
    replay = indexer_run()

    assert replay.events == 0 and replay.to_block == chain.w3.eth.block_number
    assert ChainEvent.objects.count() == 5
    assert Order.objects.count() == 2
    listing.refresh_from_db()
    assert listing.epsilon_ordered_units == 500_000


def test_receipt_and_refund_settle_the_orders(on_chain, provider_user):
    chain, acc = on_chain, on_chain.accounts
    listing = listing_for(chain, provider_user)
    ds = chain.publish(metadataHash=keccak(text="metadata v1"))
    receipted, bought = chain.buy(ds, acc.buyer, epsilon=500_000)
    indexer_run()  # the order is confirmed before it is settled...
    assert Order.objects.get(chain_order_id=receipted).status == Order.Status.CONFIRMED
    refunded, refund_bought = chain.buy(ds, acc.buyer2, epsilon=400_000)  # ...this one is settled in the same range
    hashes = [keccak(text=t) for t in ("dataset", "algorithm", "params", "result")]
    terms = chain.terms(chain.started(ds, bought))
    settle = chain.tx(acc.operator, ds.datatoken.functions.recordReceipt(receipted, terms, *hashes))
    chain.tx(acc.operator, ds.datatoken.functions.refund(refunded, chain.terms(chain.started(ds, refund_bought))))

    indexer_run()

    done = Order.objects.get(listing=listing, chain_order_id=receipted)
    assert done.status == Order.Status.RECEIPTED and done.settled_at is not None
    assert done.epsilon_spent == Decimal("0.5")  # a receipt charges the whole reservation
    fee = 12_500_000 * FEE_BPS // 10_000
    assert done.receipt == {
        "dataset_hash": "0x" + hashes[0].hex(),
        "algorithm_hash": "0x" + hashes[1].hex(),
        "params_hash": "0x" + hashes[2].hex(),
        "result_hash": "0x" + hashes[3].hex(),
        "tx_hash": settle["transactionHash"].to_0x_hex(),
        "block_number": settle["blockNumber"],
        "provider_amount": str(units_to_price(12_500_000 - fee)),
        "fee_amount": str(units_to_price(fee)),
    }
    back = Order.objects.get(listing=listing, chain_order_id=refunded)
    assert back.status == Order.Status.REFUNDED and back.settled_at is not None
    listing.refresh_from_db()
    assert listing.epsilon_ordered_units == 500_000  # the receipt charged it all; the refund released its own
    assert listing.delta_ordered_units == DELTA_1E5


def test_the_marketplaces_own_order_gets_its_chain_id_and_keeps_its_status(on_chain, provider_user):
    chain, acc = on_chain, on_chain.accounts
    listing = listing_for(chain, provider_user, **FREE)
    user = known_buyer(chain)
    ds = chain.publish(metadataHash=keccak(text="metadata v1"), **FREE)
    order_id, tx_hash = dispense(chain, ds, acc.buyer)
    listing.refresh_from_db()
    ours = Order.objects.create(
        buyer=user,
        dataset=listing.dataset,
        listing=listing,
        source=Order.Source.EXTERNAL,
        consumer_address=acc.buyer.address,
        epsilon=Decimal("0.25"),
        delta=1e-5,
        algorithm_hash="0x" + ALGORITHM.hex(),
        tx_hash=tx_hash,
        status=Order.Status.CONFIRMING,
    )
    indexer_run()
    ours.refresh_from_db()
    assert ours.chain_order_id == order_id and ours.block_number is not None
    assert ours.status == Order.Status.CONFIRMING  # the order verification decides
    assert Order.objects.count() == 1


def test_operator_flag_and_price_follow_their_events(on_chain, provider_user):
    chain, acc = on_chain, on_chain.accounts
    listing = listing_for(chain, provider_user)
    ds = chain.publish(metadataHash=keccak(text="metadata v1"))
    chain.tx(acc.operator, ds.datatoken.functions.setOperatorOrderingDisabled(True))
    chain.tx(acc.provider, ds.datatoken.functions.setPrice(7_000_000))
    indexer_run()
    listing.refresh_from_db()
    assert listing.operator_ordering_disabled is True and listing.price_units == 7_000_000

    chain.tx(acc.operator, ds.datatoken.functions.setOperatorOrderingDisabled(False))
    indexer_run()
    listing.refresh_from_db()
    assert listing.operator_ordering_disabled is False


def test_events_behind_the_confirmation_depth_wait(on_chain, settings):
    chain, acc = on_chain, on_chain.accounts
    settings.CHAIN_CONFIRMATIONS = 3
    ds = chain.publish(**FREE)
    indexer_run()
    _, tx_hash = dispense(chain, ds, acc.buyer)
    block = chain.w3.eth.block_number

    assert indexer_run().to_block == block - 2  # 1 confirmation: not read
    chain.node.mine(1)
    assert not ChainEvent.objects.filter(tx_hash=tx_hash).exists()  # 2 confirmations: not yet
    assert indexer_run().to_block == block - 1
    assert not ChainEvent.objects.filter(tx_hash=tx_hash).exists()
    chain.node.mine(1)  # latest - block + 1 == 3
    stats = indexer_run()
    assert stats.to_block == block and stats.events == 1
    assert ChainEvent.objects.filter(tx_hash=tx_hash, name="OrderStarted").exists()


def test_ranges_are_bounded_by_the_batch_size(on_chain, settings, monkeypatch):
    chain, acc = on_chain, on_chain.accounts
    settings.CHAIN_INDEXER_BATCH_BLOCKS = 2
    ds = chain.publish(**FREE)
    for _ in range(4):
        dispense(chain, ds, acc.buyer)
    ranges = []
    real = indexer._get_logs
    monkeypatch.setattr(
        indexer, "_get_logs", lambda run, start, end: ranges.append((start, end)) or real(run, start, end)
    )

    first = indexer_run(max_batches=1)
    stats = indexer_run()

    latest = chain.w3.eth.block_number
    start = chain.deployment["deployed_at_block"]
    assert first.batches == 1 and first.to_block == start + 1
    assert stats.batches == -(-(latest - start - 1) // 2) > 1
    assert ranges[0][0] == start and ranges[-1][1] == latest
    assert all(end - begin + 1 <= 2 for begin, end in ranges)
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False))  # contiguous
    assert ChainEvent.objects.filter(name="OrderStarted").count() == 4


# --- a restarted node ------------------------------------------------------------------------------


def _fresh_chain(node: AnvilNode) -> Chain:
    from web3 import Web3

    accounts = derive_accounts()
    w3 = Web3(Web3.HTTPProvider(node.rpc_url))
    deployment = deploy_contracts(
        w3, accounts.deployer, operator=accounts.operator.address, fee_collector=accounts.fee_collector.address
    )
    return Chain(w3, node, deployment, accounts)


@pytest.fixture
def own_node():
    """An anvil of the test's own (the session's one must keep its chain); stopped at the end."""
    nodes: list[AnvilNode] = []

    def start(**kwargs) -> AnvilNode:
        node = AnvilNode(**kwargs).start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()
    client.reset_caches()


def test_a_new_genesis_starts_the_index_over(own_node, settings, tmp_path, provider_user):
    settings.CHAIN_CONFIRMATIONS = 1
    genesis_time = int(time.time()) - 3600
    old = own_node(extra_args=("--timestamp", str(genesis_time)))
    chain = _fresh_chain(old)
    _point_at(settings, tmp_path, old.rpc_url, chain.deployment)
    listing = listing_for(chain, provider_user, metadata="old chain")
    ds = chain.publish(metadataHash=keccak(text="old chain"), **FREE)
    dispense(chain, ds, chain.accounts.buyer)
    dispense(chain, ds, chain.accounts.buyer2)
    assert indexer_run().events == 5
    old_genesis = IndexerCursor.objects.get().genesis_hash
    old.stop()

    new = own_node(extra_args=("--timestamp", str(genesis_time + 60)))  # no state file: a new chain
    chain = _fresh_chain(new)
    _point_at(settings, tmp_path, new.rpc_url, chain.deployment)
    ds = chain.publish(metadataHash=keccak(text="new chain"), **FREE)
    _, tx_hash = dispense(chain, ds, chain.accounts.buyer)

    stats = indexer_run()

    assert stats.reset is True
    assert stats.from_block == chain.deployment["deployed_at_block"] and stats.events == 4
    cursor = IndexerCursor.objects.get()
    assert cursor.genesis_hash != old_genesis
    assert cursor.genesis_hash == chain.w3.eth.get_block(0)["hash"].to_0x_hex()
    assert cursor.last_block == chain.w3.eth.block_number
    published = ChainEvent.objects.get(name="DatasetPublished")
    assert published.args["metadataHash"] == "0x" + keccak(text="new chain").hex()
    assert list(ChainEvent.objects.filter(name="OrderStarted").values_list("tx_hash", flat=True)) == [tx_hash]
    assert indexer_run().reset is False
    # The listing's contracts went with the old chain: its owner is told to publish again.
    listing.refresh_from_db()
    assert listing.state == ChainListing.State.FAILED and "publish the dataset again" in listing.error


def test_a_restart_from_the_state_file_continues(own_node, settings, tmp_path):
    settings.CHAIN_CONFIRMATIONS = 1
    state = tmp_path / "anvil-state.json"
    node = own_node(state_path=state)
    chain = _fresh_chain(node)
    _point_at(settings, tmp_path, node.rpc_url, chain.deployment)
    ds = chain.publish(**FREE)
    dispense(chain, ds, chain.accounts.buyer)
    assert indexer_run().events == 4
    node.stop()  # anvil writes its state

    node = own_node(state_path=state)
    chain.w3 = type(chain.w3)(type(chain.w3).HTTPProvider(node.rpc_url))
    _point_at(settings, tmp_path, node.rpc_url, chain.deployment)
    ds.datatoken = chain.contract("Datatoken", ds.datatoken.address)
    dispense(chain, ds, chain.accounts.buyer2)

    stats = indexer_run()

    assert stats.reset is False and stats.events == 1
    assert ChainEvent.objects.filter(name="OrderStarted").count() == 2
    assert ChainEvent.objects.values("chain_id", "tx_hash", "log_index").distinct().count() == 5


def test_a_node_behind_the_cursor_starts_the_index_over(own_node, settings, tmp_path):
    settings.CHAIN_CONFIRMATIONS = 1
    state = tmp_path / "anvil-state.json"
    node = own_node(state_path=state)
    chain = _fresh_chain(node)
    _point_at(settings, tmp_path, node.rpc_url, chain.deployment)
    ds = chain.publish(**FREE)
    node.stop()
    shutil.copy(state, tmp_path / "older-state.json")  # the chain right after the publish

    node = own_node(state_path=state)
    chain.w3 = type(chain.w3)(type(chain.w3).HTTPProvider(node.rpc_url))
    ds.datatoken = chain.contract("Datatoken", ds.datatoken.address)
    _point_at(settings, tmp_path, node.rpc_url, chain.deployment)
    dispense(chain, ds, chain.accounts.buyer)
    dispense(chain, ds, chain.accounts.buyer2)
    assert indexer_run().events == 5
    node.stop()

    shutil.copy(tmp_path / "older-state.json", state)  # the node comes back with the older chain
    node = own_node(state_path=state)
    _point_at(settings, tmp_path, node.rpc_url, chain.deployment)

    stats = indexer_run()

    # Walked back to the newest block the node still has as read (the publish): only the orders go.
    assert stats.reset is True and stats.dropped == 2 and stats.events == 0
    assert set(ChainEvent.objects.values_list("name", flat=True)) == {
        "DatasetPublished",
        "MetadataUpdated",
        "OperatorOrderingDisabled",
    }
    assert IndexerCursor.objects.get().last_block == stats.to_block


# --- storage details -------------------------------------------------------------------------------


def test_event_arguments_keep_integers_of_any_size():
    big = 2**256 - 1
    indexer._bulk_insert(
        [
            ChainEvent(
                chain_id=1,
                block_number=1,
                block_hash="0x" + "00" * 32,
                tx_hash="0x" + "11" * 32,
                log_index=0,
                address="0x" + "22" * 20,
                name="PriceChanged",
                args={"oldPrice": big, "newPrice": 2**53 + 1},
            )
        ]
    )
    stored = ChainEvent.objects.get()
    assert stored.args == {"oldPrice": big, "newPrice": 2**53 + 1}
    assert stored.created_at is not None


def test_a_log_without_the_events_layout_is_refused():
    spec = next(s for s in indexer._event_specs().values() if s.name == "OrderStarted")
    topics = ["0x" + "00" * 32] * 4
    good = {"topics": topics, "data": "0x" + "00" * 32 * 5}
    assert indexer._decode(spec, good)["orderId"] == 0
    with pytest.raises(ValueError):
        indexer._decode(spec, {**good, "data": "0x" + "00" * 32 * 4})
    with pytest.raises(ValueError):
        indexer._decode(spec, {**good, "topics": topics[:3]})
    with pytest.raises(ValueError):  # a uint64 word above 2**64
        indexer._decode(spec, {**good, "data": "0x" + "ff" * 32 + "00" * 32 * 4})
