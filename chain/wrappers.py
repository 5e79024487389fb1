"""One typed wrapper per contract, with explicit methods (no dynamic attribute magic).

Views call the node; ``*_data`` methods return call data for :mod:`chain.services.transactions`,
which records, signs and sends it; ``*_events`` methods decode a mined receipt's logs. ABIs come
from ``chain/artifacts/<Name>.json``; addresses are checksummed at the boundary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import keccak
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
    delta_cap: int  # the dataset's total delta budget
    delta_per_job_cap: int

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
            int(self.delta_per_job_cap),
        )


class DataFactory(_Contract):
    artifact = "DataFactory"

    def operator(self) -> str:
        return self.contract.functions.operator().call()

    def owner(self) -> str:
        return self.contract.functions.owner().call()

    def fee_bps(self) -> int:
        return self.contract.functions.feeBps().call()

    def fee_collector(self) -> str:
        return self.contract.functions.feeCollector().call()

    def order_window(self) -> int:
        return self.contract.functions.orderWindow().call()

    def parameter_delay(self) -> int:
        return self.contract.functions.parameterDelay().call()

    def pending_operator(self) -> tuple[str, int]:
        """(proposed operator, unix time from which anyone may apply it); (0x0, 0) when none."""
        operator, eta = self.contract.functions.pendingOperator().call()
        return operator, int(eta)

    def pending_fee(self) -> tuple[int, str, int]:
        """(proposed fee bps, collector, unix time from which anyone may apply it)."""
        bps, collector, eta = self.contract.functions.pendingFee().call()
        return int(bps), collector, int(eta)

    def is_datatoken(self, address: str) -> bool:
        return self.contract.functions.isDatatoken(Web3.to_checksum_address(address)).call()

    def is_payment_token(self, address: str) -> bool:
        return self.contract.functions.isPaymentToken(Web3.to_checksum_address(address)).call()

    def publish_data(self, params: PublishParams) -> HexStr:
        return self._data("publish", params.as_tuple())

    def set_payment_token_data(self, token: str, allowed: bool) -> HexStr:
        return self._data("setPaymentToken", Web3.to_checksum_address(token), bool(allowed))

    def propose_operator_data(self, operator: str) -> HexStr:
        return self._data("proposeOperator", Web3.to_checksum_address(operator))

    def apply_operator_data(self) -> HexStr:
        return self._data("applyOperator")

    def propose_fee_data(self, fee_bps: int, collector: str) -> HexStr:
        return self._data("proposeFee", int(fee_bps), Web3.to_checksum_address(collector))

    def apply_fee_data(self) -> HexStr:
        return self._data("applyFee")

    def sweep_data(self, token: str, to: str) -> HexStr:
        return self._data("sweep", Web3.to_checksum_address(token), Web3.to_checksum_address(to))

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

    def set_state_data(self, state: int) -> HexStr:
        return self._data("setState", int(state))


# EIP-712 types of an order ticket (contracts v2): the operator signs one for exactly this buyer,
# dataset (the datatoken is the verifying contract), parameters hash, epsilon, delta and price; its
# nonce becomes the on-chain order id, and it must be mined by its expiry.
TICKET_DOMAIN_NAME = "PPDX Datatoken"
TICKET_DOMAIN_VERSION = "2"
TICKET_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": PERMIT_TYPES["EIP712Domain"],
    "OrderTicket": [
        {"name": "buyer", "type": "address"},
        {"name": "epsilon", "type": "uint64"},
        {"name": "delta", "type": "uint64"},
        {"name": "algorithmHash", "type": "bytes32"},
        {"name": "price", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint64"},
    ],
}


@dataclass(frozen=True)
class OrderTicket:
    """What ``buyAndOrder`` / ``dispenseAndOrder`` take with the operator's signature (the buyer is the
    sender, bound by the signature, not a field of the call)."""

    epsilon: int
    delta: int
    algorithm_hash: bytes
    price: int
    nonce: int
    expiry: int

    def as_tuple(self) -> tuple:
        return (
            int(self.epsilon),
            int(self.delta),
            bytes(self.algorithm_hash),
            int(self.price),
            int(self.nonce),
            int(self.expiry),
        )

    def as_json(self) -> dict[str, Any]:
        """JSON-able (uint256 values as decimal strings, so clients in any language keep them exact)."""
        return {
            "epsilon": str(self.epsilon),
            "delta": str(self.delta),
            "algorithm_hash": "0x" + bytes(self.algorithm_hash).hex(),
            "price": str(self.price),
            "nonce": str(self.nonce),
            "expiry": int(self.expiry),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderTicket:
        return cls(
            epsilon=int(data["epsilon"]),
            delta=int(data["delta"]),
            algorithm_hash=bytes.fromhex(str(data["algorithm_hash"])[2:]),
            price=int(data["price"]),
            nonce=int(data["nonce"]),
            expiry=int(data["expiry"]),
        )


@dataclass(frozen=True)
class OrderTerms:
    """An open order as settlement presents it again (``Order`` in the contract: every field is in its
    ``OrderStarted`` event); the chain keeps only the keccak of its ABI encoding."""

    consumer: str
    epsilon: int
    delta: int
    amount: int
    deadline: int

    def as_tuple(self) -> tuple:
        return (
            Web3.to_checksum_address(self.consumer),
            int(self.epsilon),
            int(self.delta),
            int(self.amount),
            int(self.deadline),
        )

    def commitment(self) -> str:
        """``orderCommitment(order)`` computed here: keccak256 of the ABI encoding of the five fields."""
        encoded = abi_encode(["address", "uint64", "uint64", "uint256", "uint64"], list(self.as_tuple()))
        return "0x" + keccak(encoded).hex()

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> OrderTerms:
        """From a decoded ``OrderStarted``."""
        return cls(
            consumer=Web3.to_checksum_address(event["consumer"]),
            epsilon=int(event["epsilon"]),
            delta=int(event["delta"]),
            amount=int(event["amount"]),
            deadline=int(event["deadline"]),
        )


@dataclass(frozen=True)
class ChainOrder:
    """An order as the datatoken stores it (``getOrder``): status ``none`` when the id was never used;
    ``commitment`` (0x hex) while it is open."""

    status: str
    commitment: str


class Datatoken(_Contract):
    artifact = "Datatoken"
    ORDER_STATUS = {0: "none", 1: "open", 2: "receipted", 3: "refunded", 4: "reclaimed"}

    def order(self, order_id: int) -> ChainOrder:
        status, commitment = self.contract.functions.getOrder(int(order_id)).call()
        return ChainOrder(status=self.ORDER_STATUS.get(int(status), "none"), commitment=_hex(commitment))

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

    def fee_bps(self) -> int:
        """The fee fixed for this dataset at publish (what the quote uses, not the factory's current one)."""
        return self.contract.functions.feeBps().call()

    def fee_collector(self) -> str:
        return self.contract.functions.feeCollector().call()

    def payment_collector(self) -> str:
        return self.contract.functions.paymentCollector().call()

    def order_window(self) -> int:
        return self.contract.functions.orderWindow().call()

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

    def delta_per_job_cap(self) -> int:
        return self.contract.functions.deltaPerJobCap().call()

    def delta_left(self) -> int:
        return self.contract.functions.deltaLeft().call()

    def delta_ordered(self, *, block_identifier: BlockIdentifier = "latest") -> int:
        return self.contract.functions.deltaOrdered().call(block_identifier=block_identifier)

    def held(self) -> int:
        """Open orders' payments plus credits not yet withdrawn."""
        return self.contract.functions.held().call()

    def credits(self, account: str, *, block_identifier: BlockIdentifier = "latest") -> int:
        """What ``account`` may withdraw from this datatoken (receipts, refunds, reclaims credit it)."""
        return self.contract.functions.credits(Web3.to_checksum_address(account)).call(
            block_identifier=block_identifier
        )

    def ordering_open(self) -> bool:
        return self.contract.functions.orderingOpen().call()

    def operator_ordering_disabled(self) -> bool:
        return self.contract.functions.operatorOrderingDisabled().call()

    def order_status(self, order_id: int) -> str:
        return self.ORDER_STATUS[self.contract.functions.orderStatus(int(order_id)).call()]

    def ticket_digest(self, ticket: OrderTicket, buyer: str) -> bytes:
        return bytes(self.contract.functions.ticketDigest(ticket.as_tuple(), Web3.to_checksum_address(buyer)).call())

    def ticket_typed_data(self, ticket: OrderTicket, buyer: str, *, chain_id: int) -> dict[str, Any]:
        """The ticket as EIP-712 typed data (what the operator signs; ``ticketDigest`` on chain)."""
        return {
            "types": TICKET_TYPES,
            "primaryType": "OrderTicket",
            "domain": {
                "name": TICKET_DOMAIN_NAME,
                "version": TICKET_DOMAIN_VERSION,
                "chainId": int(chain_id),
                "verifyingContract": self.address,
            },
            "message": {
                "buyer": Web3.to_checksum_address(buyer),
                "epsilon": int(ticket.epsilon),
                "delta": int(ticket.delta),
                "algorithmHash": bytes(ticket.algorithm_hash),
                "price": int(ticket.price),
                "nonce": int(ticket.nonce),
                "expiry": int(ticket.expiry),
            },
        }

    def sign_ticket(self, operator: LocalAccount, ticket: OrderTicket, buyer: str, *, chain_id: int) -> bytes:
        """The operator's 65-byte ``r || s || v`` signature of ``ticket`` for ``buyer`` on this datatoken."""
        signed = operator.sign_typed_data(full_message=self.ticket_typed_data(ticket, buyer, chain_id=chain_id))
        return bytes(signed.signature)

    def buy_and_order_data(
        self, *, ticket: OrderTicket, signature: bytes, permit: tuple[int, int, bytes, bytes] | None
    ) -> HexStr:
        """``permit`` is (deadline, v, r, s), or None to spend an existing allowance."""
        deadline, v, r, s = permit or (0, 0, b"\x00" * 32, b"\x00" * 32)
        return self._data("buyAndOrder", ticket.as_tuple(), bytes(signature), deadline, v, r, s)

    def dispense_and_order_data(self, *, ticket: OrderTicket, signature: bytes) -> HexStr:
        return self._data("dispenseAndOrder", ticket.as_tuple(), bytes(signature))

    def record_receipt_data(
        self,
        *,
        order_id: int,
        order: OrderTerms,
        dataset_hash: bytes,
        algorithm_hash: bytes,
        params_hash: bytes,
        result_hash: bytes,
    ) -> HexStr:
        """A receipt charges exactly the order's reserved epsilon and delta (there is no epsilon spent)."""
        return self._data(
            "recordReceipt", int(order_id), order.as_tuple(), dataset_hash, algorithm_hash, params_hash, result_hash
        )

    def refund_data(self, order_id: int, order: OrderTerms) -> HexStr:
        return self._data("refund", int(order_id), order.as_tuple())

    def reclaim_data(self, order_id: int, order: OrderTerms) -> HexStr:
        return self._data("reclaim", int(order_id), order.as_tuple())

    def withdraw_data(self, account: str) -> HexStr:
        return self._data("withdraw", Web3.to_checksum_address(account))

    def sweep_data(self, token: str, to: str) -> HexStr:
        return self._data("sweep", Web3.to_checksum_address(token), Web3.to_checksum_address(to))

    def set_price_data(self, price: int) -> HexStr:
        return self._data("setPrice", int(price))

    def set_payment_collector_data(self, collector: str) -> HexStr:
        return self._data("setPaymentCollector", Web3.to_checksum_address(collector))

    def set_operator_ordering_disabled_data(self, disabled: bool) -> HexStr:
        return self._data("setOperatorOrderingDisabled", bool(disabled))

    def order_started_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "OrderStarted")

    def receipt_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "ReceiptRecorded")

    def refund_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "OrderRefunded")

    def reclaim_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "OrderReclaimed")

    def withdrawn_events(self, receipt: Any) -> list[dict[str, Any]]:
        return self._events(receipt, "Withdrawn")
