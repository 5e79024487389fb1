"""One typed wrapper per contract, with explicit methods (no dynamic attribute magic).

Views call the node; ``*_data`` methods return call data for :mod:`chain.services.transactions`,
which records, signs and sends it; ``*_events`` methods decode a mined receipt's logs. ABIs come
from ``chain/artifacts/<Name>.json``; addresses are checksummed at the boundary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.logs import DISCARD
from web3.types import BlockIdentifier

from chain.artifacts import load_artifact


def _hex(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    return value


def event_args(event: Any) -> dict[str, Any]:
    """JSON-able arguments of a decoded event (bytes as 0x hex, ints kept)."""
    return {k: _hex(v) for k, v in dict(event["args"]).items()}


class _Contract:
    artifact: str

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(self.artifact)["abi"])

    def _data(self, fn: str, *args: Any) -> HexStr:
        return self.contract.encode_abi(fn, args=list(args))

    def _events(self, receipt: Any, name: str) -> list[dict[str, Any]]:
        """Decoded ``name`` events emitted by this contract in ``receipt``."""
        own = [log for log in receipt["logs"] if Web3.to_checksum_address(log["address"]) == self.address]
        return [
            event_args(ev)
            for ev in getattr(self.contract.events, name)().process_receipt({**receipt, "logs": own}, errors=DISCARD)
        ]


# EIP-712 types of an EIP-2612 permit, as eth_signTypedData_v4 and eth-account take them: the one
# definition, used to sign (``MockStablecoin.permit_signature``) and to hand out typed data to sign.
PERMIT_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


class MockStablecoin(_Contract):
    """ERC-20 with EIP-2612 permit; also any real permit token such as USDC."""

    artifact = "MockStablecoin"

    def balance_of(self, owner: str) -> int:
        return self.contract.functions.balanceOf(Web3.to_checksum_address(owner)).call()

    def allowance(self, owner: str, spender: str) -> int:
        return self.contract.functions.allowance(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(spender)
        ).call()

    def symbol(self) -> str:
        return self.contract.functions.symbol().call()

    def decimals(self) -> int:
        return self.contract.functions.decimals().call()

    def name(self) -> str:
        return self.contract.functions.name().call()

    def nonces(self, owner: str, *, block_identifier: BlockIdentifier = "latest") -> int:
        """The owner's next EIP-2612 permit nonce (``pending``: counting permits in the mempool)."""
        return self.contract.functions.nonces(Web3.to_checksum_address(owner)).call(block_identifier=block_identifier)

    def faucet_data(self, to: str, amount: int) -> HexStr:
        return self._data("faucet", Web3.to_checksum_address(to), int(amount))

    def permit_signature(
        self, owner: LocalAccount, spender: str, value: int, deadline: int, *, chain_id: int, nonce: int | None = None
    ) -> tuple[int, bytes, bytes]:
        """EIP-2612 permit signed by ``owner``: (v, r, s) for ``Datatoken.buyAndOrder``. The nonce is read
        from the pending state, so a permit signed right after another one still in the mempool is valid."""
        if nonce is None:
            nonce = self.nonces(owner.address, block_identifier="pending")
        signed = owner.sign_typed_data(
            domain_data={
                "name": self.name(),
                "version": "1",
                "chainId": chain_id,
                "verifyingContract": self.address,
            },
            message_types={"Permit": PERMIT_TYPES["Permit"]},
            message_data={
                "owner": owner.address,
                "spender": Web3.to_checksum_address(spender),
                "value": int(value),
                "nonce": nonce,
                "deadline": int(deadline),
            },
        )
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


@dataclass(frozen=True)
class PublishParams:
    name: str
    symbol: str
    metadata_uri: str
    metadata_hash: bytes
    payment_token: str
    price: int
    epsilon_cap: int
    epsilon_per_job_cap: int
    delta_cap: int

    def as_tuple(self) -> tuple:
        return (
            self.name,
            self.symbol,
            self.metadata_uri,
            self.metadata_hash,
            Web3.to_checksum_address(self.payment_token),
            int(self.price),
            int(self.epsilon_cap),
            int(self.epsilon_per_job_cap),
            int(self.delta_cap),
        )


class DataFactory(_Contract):
    artifact = "DataFactory"

    def operator(self) -> str:
        return self.contract.functions.operator().call()

    def fee_bps(self) -> int:
        return self.contract.functions.feeBps().call()

    def is_datatoken(self, address: str) -> bool:
        return self.contract.functions.isDatatoken(Web3.to_checksum_address(address)).call()

    def publish_data(self, params: PublishParams) -> HexStr:
        return self._data("publish", params.as_tuple())

    def published_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "DatasetPublished")


class DataNFT(_Contract):
    artifact = "DataNFT"
    STATES = {0: "active", 1: "deprecated", 2: "ordering_disabled", 3: "unlisted"}

    def owner(self) -> str:
        return self.contract.functions.ownerOf(1).call()

    def state(self) -> int:
        return self.contract.functions.state().call()

    def metadata(self) -> tuple[str, str]:
        return (
            self.contract.functions.metadataURI().call(),
            _hex(self.contract.functions.metadataHash().call()),
        )


@dataclass(frozen=True)
class ChainOrder:
    """An order as the datatoken stores it (``getOrder``): status ``none`` when the id was never used."""

    consumer: str
    epsilon: int
    amount: int
    status: str


class Datatoken(_Contract):
    artifact = "Datatoken"
    ORDER_STATUS = {0: "none", 1: "open", 2: "receipted", 3: "refunded"}

    def order(self, order_id: int) -> ChainOrder:
        consumer, epsilon, amount, status = self.contract.functions.getOrder(int(order_id)).call()
        return ChainOrder(
            consumer=Web3.to_checksum_address(consumer),
            epsilon=int(epsilon),
            amount=int(amount),
            status=self.ORDER_STATUS.get(int(status), "none"),
        )

    def order_started_logs(self, order_id: int, *, from_block: int) -> list[dict[str, Any]]:
        """The ``OrderStarted`` events of ``order_id`` on the chain as the node has it now (one after
        a rollback may be another buyer's order under a reused id), each with its transaction hash."""
        logs = self.contract.events.OrderStarted().get_logs(
            argument_filters={"orderId": int(order_id)}, from_block=int(from_block), to_block="latest"
        )
        return [{**event_args(log), "tx_hash": _hex(log["transactionHash"]).lower()} for log in logs]

    def price(self) -> int:
        return self.contract.functions.price().call()

    def payment_token(self) -> str:
        return self.contract.functions.paymentToken().call()

    def data_nft(self) -> str:
        return self.contract.functions.dataNft().call()

    def epsilon_left(self) -> int:
        return self.contract.functions.epsilonLeft().call()

    def epsilon_ordered(self, *, block_identifier: BlockIdentifier = "latest") -> int:
        return self.contract.functions.epsilonOrdered().call(block_identifier=block_identifier)

    def epsilon_cap(self) -> int:
        return self.contract.functions.epsilonCap().call()

    def epsilon_per_job_cap(self) -> int:
        return self.contract.functions.epsilonPerJobCap().call()

    def delta_cap(self) -> int:
        return self.contract.functions.deltaCap().call()

    def ordering_open(self) -> bool:
        return self.contract.functions.orderingOpen().call()

    def operator_ordering_disabled(self) -> bool:
        return self.contract.functions.operatorOrderingDisabled().call()

    def order_status(self, order_id: int) -> str:
        return self.ORDER_STATUS[self.contract.functions.orderStatus(int(order_id)).call()]

    def buy_and_order_data(
        self,
        *,
        epsilon: int,
        delta: int,
        algorithm_hash: bytes,
        max_price: int,
        permit: tuple[int, int, bytes, bytes] | None,
    ) -> HexStr:
        """``permit`` is (deadline, v, r, s), or None to spend an existing allowance."""
        deadline, v, r, s = permit or (0, 0, b"\x00" * 32, b"\x00" * 32)
        return self._data("buyAndOrder", int(epsilon), int(delta), algorithm_hash, int(max_price), deadline, v, r, s)

    def dispense_and_order_data(self, *, epsilon: int, delta: int, algorithm_hash: bytes) -> HexStr:
        return self._data("dispenseAndOrder", int(epsilon), int(delta), algorithm_hash)

    def record_receipt_data(
        self,
        *,
        order_id: int,
        dataset_hash: bytes,
        algorithm_hash: bytes,
        params_hash: bytes,
        result_hash: bytes,
        epsilon_spent: int,
    ) -> HexStr:
        return self._data(
            "recordReceipt", int(order_id), dataset_hash, algorithm_hash, params_hash, result_hash, int(epsilon_spent)
        )

    def refund_data(self, order_id: int) -> HexStr:
        return self._data("refund", int(order_id))

    def set_operator_ordering_disabled_data(self, disabled: bool) -> HexStr:
        return self._data("setOperatorOrderingDisabled", bool(disabled))

    def order_started_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "OrderStarted")

    def receipt_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "ReceiptRecorded")

    def refund_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "OrderRefunded")
