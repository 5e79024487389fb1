"""The embedded development chain for ``make run``: anvil on a free loopback port with a state
file (the chain survives a restart), the contracts deployed on first start, and the environment
the web server and the worker need to use it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from web3 import Web3

from chain.artifacts import artifact_source_hash
from chain.deploy import deploy_contracts, read_deployment_file, write_deployment_file
from chain.faucet import DEV_FEE_COLLECTOR_PATH, DEV_OPERATOR_PATH, dev_account
from devtools.node import AnvilNode

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedChain:
    node: AnvilNode
    deployment: dict[str, Any]
    deployed_now: bool

    def environment(self, deployment_file: Path) -> dict[str, str]:
        """What the web server and the worker need in their environment to use this chain."""
        return {
            "CHAIN_RPC_URL": self.node.rpc_url or "",
            "CHAIN_ID": str(self.deployment["chain_id"]),
            "CHAIN_DEPLOYMENT_FILE": str(deployment_file),
            "CHAIN_OPERATOR_KEY": dev_account(DEV_OPERATOR_PATH).key.hex(),
            "CHAIN_CONFIRMATIONS": "1",
        }


class StaleContracts(RuntimeError):
    """The embedded chain holds contracts built from other sources than the artifacts of this checkout."""


def _check_contracts_current(deployment: dict[str, Any], chain_dir: Path) -> None:
    """Refuse a chain whose contracts are of another version (e.g. v1 contracts after an upgrade to v2):
    the local database's listings point at them, so deploying beside them would leave both half working."""
    if deployment.get("contracts_source_hash") != artifact_source_hash("DataFactory"):
        raise StaleContracts(
            f"The embedded chain in {chain_dir} holds contracts of an older version than this checkout's. "
            "Run `make clean` to start from a fresh chain and database (this removes the local data), "
            "then `make run` again."
        )


def _deployment_is_live(w3: Web3, deployment: dict[str, Any]) -> bool:
    if not deployment:
        return False
    if deployment.get("genesis_hash") != w3.eth.get_block(0)["hash"].to_0x_hex():
        return False
    factory = deployment.get("contracts", {}).get("DataFactory")
    return bool(factory) and w3.eth.get_code(Web3.to_checksum_address(factory)) not in (b"", b"\x00")


def start_embedded_chain(data_dir: Path, *, port: int | None = None) -> EmbeddedChain:
    """Start anvil (one block a second, state in ``data_dir/chain``) and deploy when needed."""
    chain_dir = data_dir / "chain"
    chain_dir.mkdir(parents=True, exist_ok=True)
    # anvil rebuilds the genesis block on every start; with the first start's timestamp it is the
    # same block each time, so the chain keeps its identity (and its genesis hash) across restarts.
    stamp = chain_dir / "genesis-timestamp"
    if not stamp.exists():
        stamp.write_text(str(int(time.time())))
    node = AnvilNode(
        port=port,
        state_path=chain_dir / "anvil-state.json",
        block_time=1,
        # Dump the state every 10 s as well, so a killed launcher loses at most 10 s of chain.
        extra_args=("--state-interval", "10", "--timestamp", stamp.read_text().strip()),
    )
    node.start()
    try:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployment_file = chain_dir / "deployments.json"
        existing = read_deployment_file(deployment_file, w3.eth.chain_id)
        if existing is not None and _deployment_is_live(w3, existing):
            _check_contracts_current(existing, chain_dir)
            return EmbeddedChain(node=node, deployment=existing, deployed_now=False)
        operator = dev_account(DEV_OPERATOR_PATH)
        deployment = deploy_contracts(
            w3,
            operator,
            operator=operator.address,
            fee_collector=dev_account(DEV_FEE_COLLECTOR_PATH).address,
            order_window=settings.CHAIN_ORDER_WINDOW_SECONDS,
            parameter_delay=settings.CHAIN_PARAMETER_DELAY_SECONDS,
        )
        deployment["contracts_source_hash"] = artifact_source_hash("DataFactory")
        write_deployment_file(deployment_file, deployment)
        return EmbeddedChain(node=node, deployment=deployment, deployed_now=True)
    except BaseException:
        node.stop()
        raise
