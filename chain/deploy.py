"""Deploy the contracts to any RPC, signing locally (no unlocked node accounts needed).

    deployment = deploy_contracts(w3, deployer, operator=op.address, fee_collector=fc.address)
    write_deployment_file(path, deployment)

The deployment file maps a chain id (as a string) to that chain's deployment, so one file serves
several networks; writing one chain's entry keeps the others."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.types import TxParams, TxReceipt, Wei

from chain.artifacts import load_artifact
from chain.wrappers import DataFactory

DEFAULT_FEE_BPS = 250
MAX_FEE_BPS = 1_000
# How long an order stays settleable by the operator before its buyer may reclaim it, and how long
# an operator or fee change waits before anyone may apply it (the factory's immutable bounds).
DEFAULT_ORDER_WINDOW_SECONDS = 7 * 24 * 3600
DEFAULT_PARAMETER_DELAY_SECONDS = 2 * 24 * 3600
ORDER_WINDOW_BOUNDS = (3600, 365 * 24 * 3600)
PARAMETER_DELAY_BOUNDS = (24 * 3600, 30 * 24 * 3600)


class DeploymentError(RuntimeError):
    """A deployment transaction failed, or a deployment file is unusable."""


def send_signed(w3: Web3, account: LocalAccount, tx: TxParams, *, timeout: float = 120) -> TxReceipt:
    """Fill nonce, chain id, gas and fees, sign with ``account``, send, and wait for the receipt.

    Raises DeploymentError when the transaction reverts."""
    tx = tx.copy()
    tx.setdefault("from", account.address)
    tx.setdefault("chainId", w3.eth.chain_id)
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2) + 10_000
    if "gasPrice" not in tx and "maxFeePerGas" not in tx:
        base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            tx["gasPrice"] = w3.eth.gas_price
        else:
            priority = w3.eth.max_priority_fee
            tx["maxPriorityFeePerGas"] = priority
            tx["maxFeePerGas"] = Wei(2 * base_fee + priority)
    # eth-account types the same transaction fields as a plain dict.
    signed = account.sign_transaction(cast(TransactionDictType, tx))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        raise DeploymentError(f"transaction {tx_hash.to_0x_hex()} reverted")
    return receipt


def deploy_contract(w3: Web3, deployer: LocalAccount, name: str, *args: Any) -> tuple[ChecksumAddress, TxReceipt]:
    """Deploy the artifact ``name`` with constructor ``args``; (checksummed address, receipt)."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(*args).build_transaction(
        {"from": deployer.address, "nonce": w3.eth.get_transaction_count(deployer.address, "pending")}
    )
    receipt = send_signed(w3, deployer, tx)
    address = receipt["contractAddress"]
    if address is None:
        raise DeploymentError(f"deploying {name} created no contract")
    return Web3.to_checksum_address(address), receipt


def deploy_contracts(
    w3: Web3,
    deployer: LocalAccount,
    *,
    operator: str,
    fee_collector: str,
    fee_bps: int = DEFAULT_FEE_BPS,
    order_window: int = DEFAULT_ORDER_WINDOW_SECONDS,
    parameter_delay: int = DEFAULT_PARAMETER_DELAY_SECONDS,
    with_mock_stablecoin: bool = True,
    payment_tokens: Sequence[str] = (),
) -> dict[str, Any]:
    """Deploy MockStablecoin (development chains only), the DataNFT and Datatoken implementations
    and the DataFactory (owned by ``deployer``), then allow-list the payment tokens (the stablecoin
    and ``payment_tokens``: nothing can be published in a token the factory does not allow).
    Returns the JSON-able deployment::

        {"chain_id": 31337, "genesis_hash": "0x..", "deployed_at_block": 1,
         "contracts": {"MockStablecoin": "0x..", "DataNFT": "0x..", "Datatoken": "0x..", "DataFactory": "0x.."},
         "deployer": "0x..", "operator": "0x..", "fee_collector": "0x..", "fee_bps": 250,
         "order_window": 604800, "parameter_delay": 172800, "payment_tokens": ["0x.."]}

    ``DataNFT`` and ``Datatoken`` are the implementations the factory clones; ``MockStablecoin`` is
    absent without ``with_mock_stablecoin``. Addresses are checksummed."""
    if not 0 <= fee_bps <= MAX_FEE_BPS:
        raise DeploymentError(f"fee_bps must be within 0..{MAX_FEE_BPS}, got {fee_bps}")
    if not ORDER_WINDOW_BOUNDS[0] <= order_window <= ORDER_WINDOW_BOUNDS[1]:
        raise DeploymentError(f"order_window must be within {ORDER_WINDOW_BOUNDS} seconds, got {order_window}")
    if not PARAMETER_DELAY_BOUNDS[0] <= parameter_delay <= PARAMETER_DELAY_BOUNDS[1]:
        raise DeploymentError(f"parameter_delay must be within {PARAMETER_DELAY_BOUNDS} seconds, got {parameter_delay}")
    operator = Web3.to_checksum_address(operator)
    fee_collector = Web3.to_checksum_address(fee_collector)
    contracts: dict[str, str] = {}
    first_block: int | None = None

    def deploy(name: str, *args: Any) -> str:
        nonlocal first_block
        address, receipt = deploy_contract(w3, deployer, name, *args)
        if first_block is None:
            first_block = receipt["blockNumber"]
        contracts[name] = address
        return address

    tokens = [Web3.to_checksum_address(t) for t in payment_tokens]
    if with_mock_stablecoin:
        tokens.insert(0, Web3.to_checksum_address(deploy("MockStablecoin")))
    nft_implementation = deploy("DataNFT")
    datatoken_implementation = deploy("Datatoken")
    factory = DataFactory(
        w3,
        deploy(
            "DataFactory",
            nft_implementation,
            datatoken_implementation,
            operator,
            fee_collector,
            fee_bps,
            order_window,
            parameter_delay,
        ),
    )
    for token in tokens:
        send_signed(w3, deployer, {"to": factory.address, "data": factory.set_payment_token_data(token, True)})

    return {
        "chain_id": w3.eth.chain_id,
        "genesis_hash": w3.eth.get_block(0)["hash"].to_0x_hex(),
        "deployed_at_block": first_block,
        "contracts": contracts,
        "deployer": deployer.address,
        "operator": operator,
        "fee_collector": fee_collector,
        "fee_bps": fee_bps,
        "order_window": order_window,
        "parameter_delay": parameter_delay,
        "payment_tokens": tokens,
    }


def read_deployment_file(path: Path | str, chain_id: int) -> dict[str, Any] | None:
    """The deployment recorded for ``chain_id``, or None when the file or its entry is missing."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeploymentError(f"deployment file {path} is not valid JSON: {exc}") from exc
    return data.get(str(chain_id))


def write_deployment_file(path: Path | str, deployment: dict[str, Any]) -> None:
    """Record ``deployment`` under its chain id, keeping other chains' entries (atomic replace)."""
    path = Path(path)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DeploymentError(f"deployment file {path} is not valid JSON: {exc}") from exc
    data[str(deployment["chain_id"])] = deployment
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
