"""Gas benchmark: one-transaction publish and one-transaction buy+order (with an EIP-2612 permit),
beside Ocean Protocol's figures for the same operations (v2.6.0 contracts' own gas report).

Run from the repository root (needs ``npm ci`` for anvil; no database, no Django)::

    .venv/bin/python bench/gas.py

Starts its own anvil on a free loopback port, deploys the contracts from ``chain/artifacts``,
publishes a priced dataset and has fresh buyers (who already hold the payment token) buy and
order. Prints the receipts' ``gasUsed`` (after refunds, what the sender pays for)."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from eth_utils import keccak  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.logs import DISCARD  # noqa: E402

from bench._common import report  # noqa: E402
from chain.artifacts import load_artifact  # noqa: E402
from chain.deploy import deploy_contracts, send_signed  # noqa: E402
from chain.faucet import DEFAULT_MNEMONIC  # noqa: E402
from chain.wrappers import MockStablecoin  # noqa: E402
from devtools.node import AnvilNode  # noqa: E402

PUBLISH_TARGET = 700_000
BUY_ORDER_TARGET = 150_000
OCEAN_PUBLISH = "Ocean createNftWithErc20WithFixedRate 1,427,628"
OCEAN_BUY_ORDER = "Ocean buyFromFreAndOrder 369,181"

PRICE = 12_500_000  # 12.5 USDC
EPSILON = 500_000  # 0.5
DELTA = 10_000_000_000_000  # 1e-5
# A fixed deadline (2100-01-01) keeps the permit signature, hence calldata and gas, the same every run.
PERMIT_DEADLINE = 4_102_444_800


def accounts(n: int) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


def transact(w3: Web3, account: LocalAccount, fn) -> dict:
    tx = fn.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    return send_signed(w3, account, tx)


def buy_and_order(w3: Web3, datatoken, usdc, buyer: LocalAccount, algorithm: bytes) -> int:
    deadline = PERMIT_DEADLINE
    v, r, s = MockStablecoin(w3, usdc.address).permit_signature(
        buyer, datatoken.address, PRICE, deadline, chain_id=w3.eth.chain_id
    )
    fn = datatoken.functions.buyAndOrder(EPSILON, DELTA, algorithm, PRICE, deadline, v, r, s)
    return transact(w3, buyer, fn)["gasUsed"]


def run() -> None:
    deployer, fee_collector, provider, buyer, buyer2 = accounts(5)
    with AnvilNode() as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployment = deploy_contracts(w3, deployer, operator=deployer.address, fee_collector=fee_collector.address)
        contracts = deployment["contracts"]
        factory = w3.eth.contract(address=contracts["DataFactory"], abi=load_artifact("DataFactory")["abi"])
        usdc = w3.eth.contract(address=contracts["MockStablecoin"], abi=load_artifact("MockStablecoin")["abi"])

        # A realistic dataset: the metadata URI is the marketplace's API URL of the dataset.
        params = (
            "Hospital readmissions 2019-2023",
            "PPDX-42",
            "http://127.0.0.1:8000/api/v1/datasets/3f2b8c9e-1d4a-4b6f-9a7e-2c5d8e1f0a3b/",
            keccak(text="dataset metadata"),
            usdc.address,
            PRICE,
            10_000_000,  # epsilon cap 10
            1_000_000,  # per job 1
            DELTA,
        )
        receipt = transact(w3, provider, factory.functions.publish(params))
        publish_gas = receipt["gasUsed"]
        event = factory.events.DatasetPublished().process_receipt(receipt, errors=DISCARD)[0]
        datatoken = w3.eth.contract(address=event.args.datatoken, abi=load_artifact("Datatoken")["abi"])

        for who in (buyer, buyer2):
            transact(w3, who, usdc.functions.faucet(who.address, 1_000 * 10**6))

        # Fixed hashes (not random) so that calldata, hence gas, is the same on every run.
        first = buy_and_order(w3, datatoken, usdc, buyer, keccak(text="algorithm 1"))
        second = buy_and_order(w3, datatoken, usdc, buyer, keccak(text="algorithm 2"))
        other = buy_and_order(w3, datatoken, usdc, buyer2, keccak(text="algorithm 3"))

    report(
        "publish gas",
        publish_gas,
        "",
        target=f"<= {PUBLISH_TARGET:,}; {OCEAN_PUBLISH}",
        ok=publish_gas <= PUBLISH_TARGET,
        fmt="{:,}",
    )
    report(
        "buy+order gas",
        first,
        "",
        target=f"<= {BUY_ORDER_TARGET:,}; {OCEAN_BUY_ORDER}",
        ok=first <= BUY_ORDER_TARGET,
        fmt="{:,}",
    )
    report(
        "buy+order gas (same buyer's second order)",
        second,
        "",
        target=f"<= {BUY_ORDER_TARGET:,}; {OCEAN_BUY_ORDER}",
        ok=second <= BUY_ORDER_TARGET,
        fmt="{:,}",
    )
    report(
        "buy+order gas (another fresh buyer, dataset already ordered)",
        other,
        "",
        target=f"<= {BUY_ORDER_TARGET:,}; {OCEAN_BUY_ORDER}",
        ok=other <= BUY_ORDER_TARGET,
        fmt="{:,}",
    )


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    try:
        run()
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
