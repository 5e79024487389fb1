"""The one place that builds ``Web3``, reads the deployment file and holds the operator's key.

Everything chain-facing goes through :func:`web3`, :func:`deployment` and :func:`operator_account`.
:func:`chain_preflight` is what start-up calls: a wrong chain id or an unreachable RPC stops the
process with a message that says what to fix."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from common.errors import DomainError


class ChainUnavailable(DomainError):
    """The chain is not configured, not reachable, or not the one the deployment file describes."""

    code = "chain_unavailable"
    status = 503

    def __init__(self, detail: str, *, operator_detail: str | None = None, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        # What the operators' logs and commands say: it may name the RPC URL (which can carry an
        # API key) or server paths, so pages and the API show ``detail`` only.
        self.operator_detail = operator_detail or detail


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    genesis_hash: str
    deployed_at_block: int
    contracts: dict[str, ChecksumAddress]
    operator: ChecksumAddress
    fee_collector: ChecksumAddress
    fee_bps: int
    # Contracts v2: the factory's order window (seconds from an order to its deadline) and delay of
    # operator and fee changes; 0 in a deployment file written before them.
    order_window: int = 0
    parameter_delay: int = 0

    @property
    def payment_token(self) -> ChecksumAddress | None:
        """The token prices are paid in: a configured ``PaymentToken``, else the dev stablecoin."""
        return self.contracts.get("PaymentToken") or self.contracts.get("MockStablecoin")

    @property
    def has_faucet(self) -> bool:
        """A development chain: the stablecoin has a faucet and the operator key can pay for gas."""
        return "MockStablecoin" in self.contracts and bool(settings.CHAIN_OPERATOR_KEY)

    def address(self, name: str) -> ChecksumAddress:
        try:
            return self.contracts[name]
        except KeyError as exc:
            raise ChainUnavailable(f"The deployment for chain {self.chain_id} has no {name} contract.") from exc


_local = threading.local()


class _Provider(HTTPProvider):
    """Every failure to talk to the node, wherever it happens, is a ``ChainUnavailable``: pages and
    the API answer 503 with the RPC's address, tasks retry."""

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except (requests.RequestException, OSError) as exc:
            raise ChainUnavailable(
                "The chain node does not answer; try again in a moment.",
                operator_detail=f"Cannot reach the chain at {self.endpoint_uri}: {exc}",
            ) from exc


def web3() -> Web3:
    """A ``Web3`` for ``CHAIN_RPC_URL``, one per thread and process (HTTP sessions are not shared)."""
    url = settings.CHAIN_RPC_URL
    if not url:
        raise ChainUnavailable(
            "The chain is not configured: set CHAIN_RPC_URL (make run starts an embedded anvil and sets it)."
        )
    # Keyed by process too: a forked worker child must not share its parent's HTTP connection.
    key = (url, os.getpid())
    cached = getattr(_local, "w3", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    w3 = Web3(_Provider(url, request_kwargs={"timeout": 15}))
    _local.w3 = (key, w3)
    return w3


def chain_id() -> int:
    cached = getattr(_local, "chain_id", None)
    if cached is not None and cached[0] == settings.CHAIN_RPC_URL:
        return cached[1]
    value = int(web3().eth.chain_id)
    _local.chain_id = (settings.CHAIN_RPC_URL, value)
    return value


def deployment() -> Deployment:
    """The contracts deployed on the chain ``CHAIN_RPC_URL`` points at, from ``CHAIN_DEPLOYMENT_FILE``."""
    cid = chain_id()
    path = Path(settings.CHAIN_DEPLOYMENT_FILE)
    try:
        # Read once per change of the file, not on every call of every request.
        key = (str(path), cid, path.stat().st_mtime_ns)
        cached = getattr(_local, "deployment", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ChainUnavailable(
            "The marketplace's contracts are not deployed on this chain yet.",
            operator_detail=f"No deployment file at {path}: run `manage.py chain_deploy` "
            "(make run does it for the embedded chain).",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ChainUnavailable(
            "The marketplace's chain settings are broken; the operators have been told.",
            operator_detail=f"The deployment file {path} is not valid JSON: {exc}",
        ) from exc
    entry = data.get(str(cid))
    if entry is None:
        known = ", ".join(sorted(data)) or "none"
        raise ChainUnavailable(
            f"The marketplace's contracts are not deployed on chain {cid}.",
            operator_detail=f"The node at {settings.CHAIN_RPC_URL} reports chain id {cid}, but {path} has deployments "
            f"for: {known}.",
        )
    dep = Deployment(
        chain_id=cid,
        genesis_hash=entry.get("genesis_hash", ""),
        deployed_at_block=int(entry.get("deployed_at_block", 0)),
        contracts={k: Web3.to_checksum_address(v) for k, v in entry["contracts"].items()},
        operator=Web3.to_checksum_address(entry["operator"]),
        fee_collector=Web3.to_checksum_address(entry["fee_collector"]),
        fee_bps=int(entry["fee_bps"]),
        order_window=int(entry.get("order_window", 0)),
        parameter_delay=int(entry.get("parameter_delay", 0)),
    )
    _local.deployment = (key, dep)
    return dep


def operator_account() -> LocalAccount:
    key = settings.CHAIN_OPERATOR_KEY
    if not key:
        raise ChainUnavailable("CHAIN_OPERATOR_KEY is not set; the marketplace cannot sign operator transactions.")
    return Account.from_key(key)


def chain_preflight() -> Deployment:
    """Check at start-up that the node answers, has the expected chain id, is the chain the
    deployment was made on, and that the operator key matches it. Raises ``ChainUnavailable``."""
    cid = chain_id()
    if settings.CHAIN_ID and cid != settings.CHAIN_ID:
        raise ChainUnavailable(
            f"Wrong chain: the node at {settings.CHAIN_RPC_URL} reports chain id {cid}, "
            f"but CHAIN_ID is {settings.CHAIN_ID}."
        )
    dep = deployment()
    w3 = web3()
    if dep.genesis_hash:
        genesis = w3.eth.get_block(0)["hash"].to_0x_hex()
        if genesis != dep.genesis_hash:
            raise ChainUnavailable(
                f"The chain at {settings.CHAIN_RPC_URL} is not the one the contracts were deployed on "
                f"(genesis {genesis}, deployment file says {dep.genesis_hash}); redeploy with `manage.py chain_deploy`."
            )
    factory = dep.address("DataFactory")
    if w3.eth.get_code(factory) in (b"", b"\x00"):
        raise ChainUnavailable(f"No contract code at the DataFactory address {factory} on chain {cid}.")
    if settings.CHAIN_OPERATOR_KEY and operator_account().address != dep.operator:
        raise ChainUnavailable(
            f"CHAIN_OPERATOR_KEY is for {operator_account().address}, but the factory's operator is {dep.operator}."
        )
    return dep


def reset_caches() -> None:
    """Forget the cached client and chain id (tests switch nodes; the indexer sees a new genesis)."""
    for name in ("w3", "chain_id", "deployment"):
        if hasattr(_local, name):
            delattr(_local, name)


def fail_fast_preflight(process: str) -> None:
    """Run :func:`chain_preflight` when a chain is configured; exit with its message when it fails."""
    if not settings.CHAIN_RPC_URL:
        return
    try:
        chain_preflight()
    except ChainUnavailable as exc:
        raise SystemExit(f"The {process} cannot start: {exc.operator_detail}") from None
