"""Gas benchmark (contracts v2): one-transaction publish, one-transaction buy+order (with the
operator's order ticket and an EIP-2612 permit), the receipt and the whole paid job (order +
receipt), each beside the v1 figure and Ocean Protocol's for the same operations (v2.6.0 contracts'
own gas report), with issue 15's targets.

Run from the repository root (needs ``npm ci`` for anvil; no database, no Django)::

    .venv/bin/python bench/gas.py

Starts its own anvil on a free loopback port, deploys the contracts from ``chain/artifacts``,
publishes a priced dataset, opens it, has fresh buyers (who already hold the payment token) buy and
order, and records receipts. Prints the receipts' ``gasUsed`` (after refunds, what the sender pays for)."""

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
from chain.wrappers import Datatoken, MockStablecoin, OrderTerms, OrderTicket  # noqa: E402
from devtools.node import AnvilNode  # noqa: E402

# Issue 15's targets for contracts v2, each beside the v1 figure (this benchmark on the v1 contracts)
# and Ocean's for the same operation.
PUBLISH_TARGET = 550_000
BUY_ORDER_TARGET = 140_000
RECEIPT_TARGET = 75_000
PAID_JOB_TARGET = 215_000
V1_PUBLISH = 470_728
V1_BUY_ORDER = 132_896
V1_RECEIPT = 70_600
OCEAN_PUBLISH = "Ocean createNftWithErc20WithFixedRate 1,427,628"
OCEAN_BUY_ORDER = "Ocean buyDT + startOrder 374,000 (buyFromFreAndOrder 369,181)"
OCEAN_PAID_JOB = "Ocean about 600,000 or more"

PRICE = 12_500_000  # 12.5 USDC
EPSILON = 500_000  # 0.5
DELTA = 10_000_000_000_000  # 1e-5
# A fixed deadline (2100-01-01) keeps the permit and ticket signatures, hence calldata and gas, the same every run.
PERMIT_DEADLINE = 4_102_444_800


def accounts(n: int) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


def transact(w3: Web3, account: LocalAccount, fn) -> dict:
    tx = fn.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    return send_signed(w3, account, tx)


def buy_and_order(
    w3: Web3, datatoken, usdc, buyer: LocalAccount, operator: LocalAccount, algorithm: bytes, nonce: int
) -> dict:
    """buyAndOrder with the operator's ticket and a permit; the receipt."""
    ticket = OrderTicket(
        epsilon=EPSILON, delta=DELTA, algorithm_hash=algorithm, price=PRICE, nonce=nonce, expiry=PERMIT_DEADLINE
    )
    wrapper = Datatoken(w3, datatoken.address)
    signature = wrapper.sign_ticket(operator, ticket, buyer.address, chain_id=w3.eth.chain_id)
    v, r, s = MockStablecoin(w3, usdc.address).permit_signature(
        buyer, datatoken.address, PRICE, PERMIT_DEADLINE, chain_id=w3.eth.chain_id
    )
    fn = datatoken.functions.buyAndOrder(ticket.as_tuple(), signature, PERMIT_DEADLINE, v, r, s)
    return transact(w3, buyer, fn)


def record_receipt(w3: Web3, datatoken, operator: LocalAccount, order_receipt: dict, result: bytes) -> int:
    started = Datatoken(w3, datatoken.address).order_started_events(order_receipt)[0]
    terms = OrderTerms.from_event(started).as_tuple()
    h = keccak(text="hash")
    fn = datatoken.functions.recordReceipt(started["orderId"], terms, h, h, h, result)
    return transact(w3, operator, fn)["gasUsed"]


def run() -> None:
    deployer, fee_collector, provider, buyer, buyer2 = accounts(5)
    operator = deployer
    with AnvilNode() as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployment = deploy_contracts(w3, deployer, operator=operator.address, fee_collector=fee_collector.address)
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
            10 * DELTA,  # total delta budget
            DELTA,  # delta per job
        )
        receipt = transact(w3, provider, factory.functions.publish(params))
        publish_gas = receipt["gasUsed"]
        event = factory.events.DatasetPublished().process_receipt(receipt, errors=DISCARD)[0]
        datatoken = w3.eth.contract(address=event.args.datatoken, abi=load_artifact("Datatoken")["abi"])
        # A new datatoken is closed until listed: the operator opens it (as moderation does).
        transact(w3, operator, datatoken.functions.setOperatorOrderingDisabled(False))

        for who in (buyer, buyer2):
            transact(w3, who, usdc.functions.faucet(who.address, 1_000 * 10**6))

        # Fixed hashes and nonces (not random) so that calldata, hence gas, is the same on every run.
        first = buy_and_order(w3, datatoken, usdc, buyer, operator, keccak(text="algorithm 1"), 1)
        second = buy_and_order(w3, datatoken, usdc, buyer, operator, keccak(text="algorithm 2"), 2)
        other = buy_and_order(w3, datatoken, usdc, buyer2, operator, keccak(text="algorithm 3"), 3)
        # The first receipt credits collectors that held nothing yet; later ones are the steady state.
        first_receipt = record_receipt(w3, datatoken, operator, first, keccak(text="result 1"))
        steady = record_receipt(w3, datatoken, operator, second, keccak(text="result 2"))
        third = record_receipt(w3, datatoken, operator, other, keccak(text="result 3"))
        # The whole paid job: a fresh buyer's order on a dataset already ordered, then its receipt;
        # and the dataset's very first job (its collectors' credit slots written from zero).
        paid_job = other["gasUsed"] + third
        first_job = first["gasUsed"] + first_receipt

    def line(name: str, value: int, target: int, v1: int | None, ocean: str) -> None:
        beside = f"v1 {v1:,}; " if v1 is not None else ""
        report(name, value, "", target=f"<= {target:,}; {beside}{ocean}", ok=value <= target, fmt="{:,}")

    line("publish gas", publish_gas, PUBLISH_TARGET, V1_PUBLISH, OCEAN_PUBLISH)
    line("buy+order gas (first, ticket + permit)", first["gasUsed"], BUY_ORDER_TARGET, V1_BUY_ORDER, OCEAN_BUY_ORDER)
    line("buy+order gas (same buyer's second order)", second["gasUsed"], BUY_ORDER_TARGET, None, OCEAN_BUY_ORDER)
    line(
        "buy+order gas (another fresh buyer, dataset already ordered)",
        other["gasUsed"],
        BUY_ORDER_TARGET,
        None,
        OCEAN_BUY_ORDER,
    )
    line("receipt gas (steady state)", steady, RECEIPT_TARGET, V1_RECEIPT, "")
    line("order + receipt gas (a paid job, fresh buyer)", paid_job, PAID_JOB_TARGET, None, OCEAN_PAID_JOB)
    line("order + receipt gas (the dataset's first job)", first_job, PAID_JOB_TARGET, None, OCEAN_PAID_JOB)


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
