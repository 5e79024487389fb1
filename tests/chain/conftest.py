"""Contract tests against a real anvil: one node and one deployment per session, and an
``evm_snapshot``/``evm_revert`` around every ``chain``-marked test so each starts from the same state.

No Django database: everything here talks to anvil over loopback JSON-RPC."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from chain.artifacts import ARTIFACT_NAMES, load_artifact
from chain.deploy import deploy_contracts, send_signed
from chain.faucet import DEFAULT_MNEMONIC
from chain.wrappers import Datatoken, MockStablecoin, OrderTerms, OrderTicket
from devtools.node import AnvilNode

USDC = 10**6
DELTA_1E5 = 10_000_000_000_000  # 1e-5 in atto-delta

DEFAULT_PRICE = 12_500_000
DEFAULT_EPSILON_CAP = 3_000_000
DEFAULT_PER_JOB_CAP = 1_000_000
DEFAULT_DELTA_CAP = 10 * DELTA_1E5  # the total (cumulative) delta budget
DEFAULT_DELTA_PER_JOB_CAP = DELTA_1E5
FEE_BPS = 250
ORDER_WINDOW = 7 * 24 * 3600
ALGORITHM = keccak(text="algorithm: mean(age) with laplace noise")


@dataclass(frozen=True)
class Accounts:
    deployer: LocalAccount  # owns the factory
    operator: LocalAccount  # the marketplace operator (settles orders, delisting flag)
    fee_collector: LocalAccount
    provider: LocalAccount
    buyer: LocalAccount
    buyer2: LocalAccount
    manager: LocalAccount
    updater: LocalAccount
    stranger: LocalAccount


@dataclass
class Dataset:
    nft: Contract
    datatoken: Contract
    owner: LocalAccount
    params: dict[str, Any]
    receipt: Any


@functools.cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """Revert selector -> (name, argument names, types), over every artifact (OpenZeppelin's included)."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in ARTIFACT_NAMES:
        for item in load_artifact(name)["abi"]:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                table[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)
    return table


def decode_error(data: bytes | str) -> tuple[str, dict[str, Any]]:
    """(error name, {argument: value}) of custom-error revert data."""
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
    if raw[:4] not in _error_table():
        raise AssertionError(f"unknown revert data {raw.hex()}")
    name, arg_names, types = _error_table()[raw[:4]]
    values = [
        Web3.to_checksum_address(value) if type_ == "address" else value
        for type_, value in zip(types, decode(types, raw[4:]), strict=True)
    ]
    return name, dict(zip(arg_names, values, strict=True))


class Chain:
    """Small helpers over web3 for the tests: send signed transactions, read reverts, publish, buy."""

    def __init__(self, w3: Web3, node: AnvilNode, deployment: dict[str, Any], accounts: Accounts) -> None:
        self.w3 = w3
        self.node = node
        self.deployment = deployment
        self.accounts = accounts
        contracts = deployment["contracts"]
        self.factory = self.contract("DataFactory", contracts["DataFactory"])
        self.usdc = self.contract("MockStablecoin", contracts["MockStablecoin"])

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name)["abi"])

    # ----- transactions -----

    def tx(self, account: LocalAccount, fn, **overrides: Any):
        """Send ``fn`` from ``account`` (signed locally) and return the successful receipt."""
        params = {"from": account.address, "nonce": self.w3.eth.get_transaction_count(account.address), **overrides}
        return send_signed(self.w3, account, fn.build_transaction(params))

    def revert(self, account: LocalAccount, fn) -> tuple[str, dict[str, Any]]:
        """The custom error ``fn`` reverts with when sent by ``account`` (simulated with eth_call)."""
        try:
            fn.call({"from": account.address})
        except ContractLogicError as exc:
            assert exc.data, f"revert without data: {exc}"
            return decode_error(exc.data)
        raise AssertionError("the call did not revert")

    def events(self, contract: Contract, name: str, receipt) -> list[Any]:
        """The ``name`` events that ``contract`` itself emitted in ``receipt`` (same-signature events of
        other contracts, e.g. the payment token's Transfer, are left out)."""
        logs = [log for log in receipt["logs"] if log["address"] == contract.address]
        return list(getattr(contract.events, name)().process_receipt({**receipt, "logs": logs}, errors=DISCARD))

    def event(self, contract: Contract, name: str, receipt) -> Any:
        (found,) = self.events(contract, name, receipt)
        return found.args

    def timestamp(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    # ----- tokens -----

    def fund(self, account: LocalAccount, amount: int = 1_000 * USDC) -> None:
        self.tx(account, self.usdc.functions.faucet(account.address, amount))

    def balance(self, address: str, token: Contract | None = None) -> int:
        return (token or self.usdc).functions.balanceOf(address).call()

    def sign_permit(
        self,
        owner: LocalAccount,
        spender: str,
        value: int,
        *,
        deadline: int | None = None,
        token: Contract | None = None,
        nonce: int | None = None,
    ) -> tuple[int, int, bytes, bytes]:
        """An EIP-2612 permit of ``owner`` for ``spender``: (deadline, v, r, s)."""
        token = token or self.usdc
        deadline = deadline if deadline is not None else self.timestamp() + 3600
        v, r, s = MockStablecoin(self.w3, token.address).permit_signature(
            owner, spender, value, deadline, chain_id=self.w3.eth.chain_id, nonce=nonce
        )
        return deadline, v, r, s

    # ----- datasets and orders -----

    def publish_params(self, **overrides: Any) -> dict[str, Any]:
        params = {
            "name": "Hospital readmissions 2019-2023",
            "symbol": "PPDX-1",
            "metadataURI": "http://127.0.0.1:8000/api/v1/datasets/3f2b8c9e-1d4a-4b6f-9a7e-2c5d8e1f0a3b/",
            "metadataHash": keccak(text="metadata v1"),
            "paymentToken": self.usdc.address,
            "price": DEFAULT_PRICE,
            "epsilonCap": DEFAULT_EPSILON_CAP,
            "epsilonPerJobCap": DEFAULT_PER_JOB_CAP,
            "deltaCap": DEFAULT_DELTA_CAP,
            "deltaPerJobCap": DEFAULT_DELTA_PER_JOB_CAP,
        }
        params.update(overrides)
        return params

    def publish(self, owner: LocalAccount | None = None, *, open_: bool = True, **overrides: Any) -> Dataset:
        """Publish, then (``open_``) open ordering as the operator does when a moderator lists it:
        a v2 datatoken starts closed."""
        owner = owner or self.accounts.provider
        params = self.publish_params(**overrides)
        receipt = self.tx(owner, self.factory.functions.publish(params))
        published = self.event(self.factory, "DatasetPublished", receipt)
        dataset = Dataset(
            nft=self.contract("DataNFT", published.nft),
            datatoken=self.contract("Datatoken", published.datatoken),
            owner=owner,
            params=params,
            receipt=receipt,
        )
        if open_:
            self.tx(self.accounts.operator, dataset.datatoken.functions.setOperatorOrderingDisabled(False))
        return dataset

    # ----- order tickets (contracts v2) -----

    def ticket(
        self,
        dataset: Dataset,
        buyer: LocalAccount,
        *,
        epsilon: int = 500_000,
        delta: int = DELTA_1E5,
        algorithm: bytes = ALGORITHM,
        price: int | None = None,
        nonce: int | None = None,
        expiry: int | None = None,
        signer: LocalAccount | None = None,
    ) -> tuple[OrderTicket, bytes]:
        """An order ticket for ``buyer`` signed by the operator (or ``signer``): (ticket, signature)."""
        self._nonce = getattr(self, "_nonce", 0) + 1
        ticket = OrderTicket(
            epsilon=epsilon,
            delta=delta,
            algorithm_hash=algorithm,
            price=dataset.datatoken.functions.price().call() if price is None else price,
            nonce=self._nonce if nonce is None else nonce,
            expiry=self.timestamp() + 1800 if expiry is None else expiry,
        )
        wrapper = Datatoken(self.w3, dataset.datatoken.address)
        signature = wrapper.sign_ticket(
            signer or self.accounts.operator, ticket, buyer.address, chain_id=self.w3.eth.chain_id
        )
        return ticket, signature

    @staticmethod
    def terms(started: Any) -> tuple:
        """The ``Order`` tuple settlement presents, from an ``OrderStarted`` event's arguments."""
        return OrderTerms.from_event(dict(started)).as_tuple()

    def buy_fn(
        self,
        dataset: Dataset,
        buyer: LocalAccount,
        *,
        epsilon: int = 500_000,
        delta: int = DELTA_1E5,
        algorithm: bytes = ALGORITHM,
        price: int | None = None,
        permit: bool = True,
        **ticket: Any,
    ):
        """The ``buyAndOrder`` call with an operator-signed ticket (``ticket`` overrides its fields)
        and a fresh permit for the current price unless ``permit=False``."""
        current = dataset.datatoken.functions.price().call()
        deadline, v, r, s = (0, 0, b"\0" * 32, b"\0" * 32)
        if permit:
            deadline, v, r, s = self.sign_permit(buyer, dataset.datatoken.address, current)
        signed, signature = self.ticket(
            dataset, buyer, epsilon=epsilon, delta=delta, algorithm=algorithm, price=price, **ticket
        )
        return dataset.datatoken.functions.buyAndOrder(signed.as_tuple(), signature, deadline, v, r, s)

    def buy(self, dataset: Dataset, buyer: LocalAccount, **kwargs: Any) -> tuple[int, Any]:
        """Buy and order; (order id, receipt)."""
        receipt = self.tx(buyer, self.buy_fn(dataset, buyer, **kwargs))
        return self.event(dataset.datatoken, "OrderStarted", receipt).orderId, receipt

    def started(self, dataset: Dataset, receipt: Any) -> Any:
        """The ``OrderStarted`` arguments of an order's receipt."""
        return self.event(dataset.datatoken, "OrderStarted", receipt)

    def increase_time(self, seconds: int) -> None:
        """Move the chain's clock on (anvil's evm_increaseTime, then a block)."""
        self.w3.provider.make_request("evm_increaseTime", [int(seconds)])
        self.w3.provider.make_request("evm_mine", [])


def derive_accounts() -> Accounts:
    """The named test accounts, derived from anvil's mnemonic (the same on every anvil we start)."""
    Account.enable_unaudited_hdwallet_features()

    def derive(i: int) -> LocalAccount:
        return Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")

    return Accounts(
        deployer=derive(0),
        fee_collector=derive(1),
        provider=derive(2),
        buyer=derive(3),
        stranger=derive(4),
        manager=derive(5),
        updater=derive(6),
        buyer2=derive(7),
        operator=derive(9),
    )


@pytest.fixture(scope="session")
def accounts() -> Accounts:
    return derive_accounts()


@pytest.fixture(scope="session")
def anvil():
    node = AnvilNode(accounts=10)
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def w3(anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.rpc_url))


@pytest.fixture(scope="session")
def deployment(w3, accounts) -> dict[str, Any]:
    return deploy_contracts(
        w3,
        accounts.deployer,
        operator=accounts.operator.address,
        fee_collector=accounts.fee_collector.address,
        fee_bps=FEE_BPS,
    )


@pytest.fixture(scope="session")
def _session_chain(w3, anvil, deployment, accounts) -> Chain:
    chain = Chain(w3, anvil, deployment, accounts)
    for account in (accounts.buyer, accounts.buyer2, accounts.stranger):
        chain.fund(account)
    return chain


@pytest.fixture
def chain(_session_chain, anvil):
    """The helper over the session's chain; the test's changes are undone after it (evm_snapshot/evm_revert)."""
    snapshot = anvil.snapshot()
    yield _session_chain
    anvil.revert(snapshot)


def clone_creation_code(implementation: str, args: bytes) -> bytes:
    """OpenZeppelin ``Clones.cloneWithImmutableArgs`` creation code (EIP-1167 proxy + appended args)."""
    return (
        b"\x61"
        + (len(args) + 0x2D).to_bytes(2, "big")
        + bytes.fromhex("3d81600a3d39f3363d3d373d3d3d363d73")
        + bytes.fromhex(implementation[2:])
        + bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
        + args
    )


@pytest.fixture
def clone_with_factory(chain):
    """Make a clone of the DataNFT or Datatoken implementation whose factory argument is ``account``
    (an EOA), so a test can call ``initialize`` itself. Datatoken clones get the other arguments too:
    the dataset's NFT = ``account``, USDC, the fee collector, 2.5 %, a 7-day window, caps 3 / 1 / 1e-4 / 1e-5."""

    def make(name: str, account: LocalAccount) -> Contract:
        factory = bytes.fromhex(account.address[2:])
        if name == "DataNFT":
            args = factory
        else:
            args = (
                factory
                + factory
                + bytes.fromhex(chain.usdc.address[2:])
                + bytes.fromhex(chain.accounts.fee_collector.address[2:])
                + FEE_BPS.to_bytes(2, "big")
                + ORDER_WINDOW.to_bytes(4, "big")
                + DEFAULT_EPSILON_CAP.to_bytes(8, "big")
                + DEFAULT_PER_JOB_CAP.to_bytes(8, "big")
                + DEFAULT_DELTA_CAP.to_bytes(8, "big")
                + DEFAULT_DELTA_PER_JOB_CAP.to_bytes(8, "big")
            )
        code = clone_creation_code(chain.deployment["contracts"][name], args)
        receipt = send_signed(chain.w3, account, {"data": code, "value": 0})
        return chain.contract(name, receipt["contractAddress"])

    return make


@pytest.fixture
def dataset(chain) -> Dataset:
    """A priced dataset (12.5 USDC, epsilon cap 3, per job 1, delta cap 1e-4, per job 1e-5) published by
    the provider and opened by the operator."""
    return chain.publish()


@pytest.fixture
def on_chain(chain, settings, tmp_path, deployment, accounts):
    """The marketplace pointed at the test anvil, with the session's deployment and operator key."""
    from chain import client
    from chain.deploy import write_deployment_file

    path = tmp_path / "deployments.json"
    write_deployment_file(path, deployment)
    settings.CHAIN_RPC_URL = chain.node.rpc_url
    settings.CHAIN_DEPLOYMENT_FILE = str(path)
    settings.CHAIN_OPERATOR_KEY = accounts.operator.key.hex()
    settings.CHAIN_CONFIRMATIONS = 1
    settings.CHAIN_ID = 0
    client.reset_caches()
    yield chain
    client.reset_caches()


@pytest.fixture
def people(on_chain, deployment):
    """Marketplace users (provider, buyer, staff); provider and buyer hold funded managed wallets."""
    from chain.faucet import fund_address
    from chain.services.wallets import wallet_managed_get_or_create
    from tests.factories import UserFactory

    provider = UserFactory(username="provider")
    buyer = UserFactory(username="buyer")
    staff = UserFactory(username="moderator", is_staff=True)
    for user in (provider, buyer):
        fund_address(on_chain.w3, deployment, wallet_managed_get_or_create(user=user).address)
    return provider, buyer, staff
