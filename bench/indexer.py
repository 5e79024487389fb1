"""Indexer benchmark: events per second read, decoded and written by ``indexer_run()``.

Run from the repository root (needs ``npm ci`` for anvil)::

    .venv/bin/python bench/indexer.py                 # 10,000 events, SQLite
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/ppdx_bench_indexer .venv/bin/python bench/indexer.py

Starts its own anvil on a free loopback port, deploys the contracts, publishes a few free datasets
(each with its ``ChainListing`` row, as the marketplace would have), then generates the events
untimed: ``dispenseAndOrder`` orders from several consumers (some of them wallets of marketplace
users) and operator receipts for a tenth of them, sent from anvil's unlocked dev accounts in JSON-RPC
batches with automine off and mined many per block. Then times one ``indexer_run()`` over the whole
chain: ``eth_getLogs``, decoding, the event rows, the orders it creates and settles, the cursor."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import remove_tree, report, setup_django  # noqa: E402

TARGET = 2_000  # events/s
DATASETS = 4
CONSUMERS = 6  # anvil dev accounts 3..8; the first half are marketplace users' wallets
EPSILON = 100  # micro-epsilon per order (0.0001)
DELTA = 10**9
DELTA_CAP = 10**18  # the total delta budget of each dataset: never the limit here
RECEIPT_SHARE = 10  # one order in ten gets a receipt
RPC_BATCH = 500  # transactions per JSON-RPC batch request
PER_BLOCK = 1_000  # transactions mined per block


def _rpc_batch(w3, calls: list[tuple[str, list]]) -> list:
    replies = w3.provider.make_batch_request(calls)
    if isinstance(replies, dict):  # the whole batch was refused
        raise RuntimeError(f"batch of {len(calls)} calls refused: {replies.get('error')}")
    errors = [r["error"] for r in replies if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(calls)} calls failed, first: {errors[0]}")
    return [r["result"] for r in replies]


def _send_and_mine(node, w3, txs: list[dict]) -> None:
    """Send ``txs`` (from unlocked accounts, explicit nonces and gas) with automine off, then mine
    blocks of about ``PER_BLOCK`` transactions until the pool is empty."""
    node.rpc("evm_setAutomine", [False])
    try:
        for i in range(0, len(txs), PER_BLOCK):
            block = txs[i : i + PER_BLOCK]
            for j in range(0, len(block), RPC_BATCH):
                _rpc_batch(w3, [("eth_sendTransaction", [tx]) for tx in block[j : j + RPC_BATCH]])
            node.rpc("evm_mine", timeout=120)
        while int(node.rpc("txpool_status")["pending"], 16):
            node.rpc("evm_mine", timeout=120)
    finally:
        node.rpc("evm_setAutomine", [True])


def run(events_target: int) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from eth_account import Account
    from web3 import Web3
    from web3.logs import DISCARD

    from chain import client
    from chain.artifacts import load_artifact
    from chain.deploy import deploy_contracts, send_signed, write_deployment_file
    from chain.faucet import DEFAULT_MNEMONIC
    from chain.models import ChainEvent, ChainListing, Order, Wallet
    from chain.services.indexer import indexer_run
    from chain.wrappers import Datatoken, OrderTerms, OrderTicket
    from devtools.node import AnvilNode
    from marketplace.models import Dataset

    call_command("migrate", verbosity=0, interactive=False)
    Account.enable_unaudited_hdwallet_features()
    accounts = [Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(10)]
    deployer, operator, provider = accounts[:3]
    consumers = accounts[3 : 3 + CONSUMERS]
    orders_n = events_target - events_target // RECEIPT_SHARE
    receipts_n = events_target - orders_n

    # Blocks of up to PER_BLOCK orders: lift anvil's default 30M block gas limit.
    with AnvilNode(extra_args=("--gas-limit", str(PER_BLOCK * 400_000))) as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployment = deploy_contracts(w3, deployer, operator=operator.address, fee_collector=deployer.address)
        deployment_file = Path(tempfile.mkdtemp(prefix="ppdx-bench-indexer-")) / "deployments.json"
        write_deployment_file(deployment_file, deployment)
        settings.CHAIN_RPC_URL = node.rpc_url
        settings.CHAIN_DEPLOYMENT_FILE = str(deployment_file)
        client.reset_caches()

        # Marketplace rows: a provider, buyers with wallets, datasets with listings being published.
        User = get_user_model()
        owner = User.objects.create_user(username="bench-provider", password=None)
        for i, consumer in enumerate(consumers[: CONSUMERS // 2]):
            buyer = User.objects.create_user(username=f"bench-buyer-{i}", password=None)
            Wallet.objects.create(user=buyer, address=consumer.address, kind=Wallet.Kind.EXTERNAL)
        factory = w3.eth.contract(
            address=deployment["contracts"]["DataFactory"], abi=load_artifact("DataFactory")["abi"]
        )
        datatokens = []
        cap = 10**12
        for i in range(DATASETS):
            metadata_hash = os.urandom(32)
            dataset = Dataset.objects.create(
                owner=owner,
                title=f"Bench dataset {i}",
                price=0,
                file_format="csv",
                original_filename=f"bench-{i}.csv",
                storage_name=f"private/bench-indexer-{i}.enc",
                file_size=1000,
                file_sha256="0" * 64,
                validation="valid",
            )
            ChainListing.objects.create(
                dataset=dataset,
                chain_id=deployment["chain_id"],
                owner_address=provider.address,
                payment_token=deployment["contracts"]["MockStablecoin"],
                price_units=0,
                epsilon_cap_units=cap,
                epsilon_per_job_units=10**6,
                delta_units=10**15,
                delta_cap_units=DELTA_CAP,
                metadata_hash="0x" + metadata_hash.hex(),
            )
            params = (f"Bench {i}", f"B{i}", f"https://example.org/{i}", metadata_hash)
            params += (deployment["contracts"]["MockStablecoin"], 0, cap, 10**6, DELTA_CAP, 10**15)
            tx = factory.functions.publish(params).build_transaction(
                {"from": provider.address, "nonce": w3.eth.get_transaction_count(provider.address)}
            )
            receipt = send_signed(w3, provider, tx)
            datatokens.append(
                factory.events.DatasetPublished().process_receipt(receipt, errors=DISCARD)[0]["args"]["datatoken"]
            )
            # A new datatoken is closed: the operator opens it, as moderation's listing does.
            opening = Datatoken(w3, datatokens[-1]).set_operator_ordering_disabled_data(False)
            send_signed(w3, operator, {"to": datatokens[-1], "data": opening})

        # The events, untimed.
        t0 = time.perf_counter()
        abi = load_artifact("Datatoken")["abi"]
        tokens = [w3.eth.contract(address=a, abi=abi) for a in datatokens]
        nonces = {a.address: w3.eth.get_transaction_count(a.address) for a in [*consumers, operator]}
        txs, ordered = [], []
        chain_id = w3.eth.chain_id
        expiry = int(w3.eth.get_block("latest")["timestamp"]) + 24 * 3600
        for k in range(orders_n):
            who, token = consumers[k % len(consumers)], tokens[k % len(tokens)]
            # Every order carries the operator's ticket; its nonce (k + 1) is the order id.
            ticket = OrderTicket(
                epsilon=EPSILON, delta=DELTA, algorithm_hash=k.to_bytes(32, "big"), price=0, nonce=k + 1, expiry=expiry
            )
            wrapper = Datatoken(w3, token.address)
            signature = wrapper.sign_ticket(operator, ticket, who.address, chain_id=chain_id)
            data = wrapper.dispense_and_order_data(ticket=ticket, signature=signature)
            txs.append({"from": who.address, "to": token.address, "data": data, "gas": hex(300_000)})
            txs[-1]["nonce"] = hex(nonces[who.address])
            nonces[who.address] += 1
            ordered.append(token)
        _send_and_mine(node, w3, txs)
        # Each order's terms (its deadline comes with its block), as settlement presents them.
        terms: dict[int, OrderTerms] = {}
        for token in tokens:
            for log in token.events.OrderStarted().get_logs(from_block=deployment["deployed_at_block"]):
                terms[int(log["args"]["orderId"])] = OrderTerms.from_event(dict(log["args"]))
        step = max(1, orders_n // max(1, receipts_n))
        txs = []
        for k, token in enumerate(ordered):
            if k % step or len(txs) >= receipts_n:
                continue
            data = Datatoken(w3, token.address).record_receipt_data(
                order_id=k + 1,
                order=terms[k + 1],
                dataset_hash=b"\x01" * 32,
                algorithm_hash=k.to_bytes(32, "big"),
                params_hash=b"\x02" * 32,
                result_hash=b"\x03" * 32,
            )
            txs.append({"from": operator.address, "to": token.address, "data": data, "gas": hex(300_000)})
            txs[-1]["nonce"] = hex(nonces[operator.address])
            nonces[operator.address] += 1
        _send_and_mine(node, w3, txs)
        node.mine(max(1, settings.CHAIN_CONFIRMATIONS))  # every event behind the confirmation depth
        generation = time.perf_counter() - t0
        blocks = w3.eth.block_number - deployment["deployed_at_block"] + 1
        report(
            f"event generation ({orders_n:,} orders + {len(txs):,} receipts, {blocks:,} blocks)",
            generation,
            "s",
            anchor="untimed below",
        )

        # The measurement: one run from the deployment block to the safe head.
        t0 = time.perf_counter()
        stats = indexer_run()
        seconds = time.perf_counter() - t0

        stored = ChainEvent.objects.count()
        chain_orders = Order.objects.filter(source=Order.Source.CHAIN).count()
        receipted = Order.objects.filter(status=Order.Status.RECEIPTED).count()
        with_buyer = Order.objects.filter(buyer__isnull=False).count()
        if stored != stats.events or chain_orders != orders_n or receipted != len(txs):
            raise RuntimeError(
                f"indexer mismatch: {stats.events} events reported, {stored} stored, {chain_orders}/{orders_n} orders, "
                f"{receipted}/{len(txs)} receipted"
            )
        if ChainListing.objects.filter(state=ChainListing.State.PUBLISHED).count() != DATASETS:
            raise RuntimeError("not every listing was attached to its DatasetPublished event")
        rate = stats.events / seconds
        db = "PostgreSQL" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "SQLite"
        report(
            "indexer throughput",
            rate,
            "events/s",
            target=f">= {TARGET:,} events/s",
            ok=rate >= TARGET,
            anchor=(
                f"{stats.events:,} events in {seconds:.2f} s, {stats.batches} batch(es) of <= "
                f"{settings.CHAIN_INDEXER_BATCH_BLOCKS:,} blocks, {db}; {chain_orders:,} orders created "
                f"({with_buyer:,} with a known buyer), {receipted:,} receipted"
            ),
            fmt="{:,.0f}",
        )
        remove_tree(deployment_file.parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="order and receipt events (default 10000)")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL")
    data_dir = None
    if url:
        from bench.catalog_search import database_drop, database_ensure

        database_drop(url)
        database_ensure(url)
    try:
        data_dir = setup_django(database_url=url, prefix="ppdx-bench-indexer-")
        run(args.events)
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        if data_dir is not None:
            from django.db import connections

            connections.close_all()
        if url:
            database_drop(url)
        remove_tree(data_dir)


if __name__ == "__main__":
    sys.exit(main())
