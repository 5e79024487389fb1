"""The embedded anvil: free port, chain id, a state file that survives a restart, clear errors."""

from __future__ import annotations

import socket

import pytest
from web3 import Web3

from chain.artifacts import load_artifact
from chain.deploy import deploy_contracts, send_signed
from devtools.node import AnvilError, AnvilNode, anvil_binary
from tests.chain.conftest import USDC, derive_accounts

pytestmark = pytest.mark.chain


def usdc_of(w3: Web3, deployment: dict):
    return w3.eth.contract(
        address=deployment["contracts"]["MockStablecoin"], abi=load_artifact("MockStablecoin")["abi"]
    )


def test_state_file_survives_a_restart(state_dir):
    accounts = derive_accounts()
    state = state_dir / "anvil-state.json"
    with AnvilNode(state_path=state) as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployment = deploy_contracts(
            w3, accounts.deployer, operator=accounts.operator.address, fee_collector=accounts.fee_collector.address
        )
        tx = (
            usdc_of(w3, deployment)
            .functions.faucet(accounts.buyer.address, 123 * USDC)
            .build_transaction(
                {"from": accounts.buyer.address, "nonce": w3.eth.get_transaction_count(accounts.buyer.address)}
            )
        )
        send_signed(w3, accounts.buyer, tx)
        block = w3.eth.block_number
        factory_code = w3.eth.get_code(deployment["contracts"]["DataFactory"])
    assert state.exists() and state.stat().st_size > 0

    with AnvilNode(state_path=state) as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        assert w3.eth.block_number == block
        assert w3.eth.get_block(0)["hash"].to_0x_hex() == deployment["genesis_hash"]
        assert w3.eth.get_code(deployment["contracts"]["DataFactory"]) == factory_code
        assert usdc_of(w3, deployment).functions.balanceOf(accounts.buyer.address).call() == 123 * USDC
        # The restarted chain keeps working: the same factory publishes.
        assert w3.eth.get_transaction_count(accounts.buyer.address) == 1


def test_given_port_and_chain_id():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with AnvilNode(port=port, chain_id=1337) as node:
        assert node.rpc_url == f"http://127.0.0.1:{port}"
        assert int(node.rpc("eth_chainId"), 16) == 1337
        assert node.running
    assert not node.running
    assert node.rpc_url is None


def test_snapshot_and_revert():
    with AnvilNode() as node:
        snapshot = node.snapshot()
        node.mine(3)
        assert int(node.rpc("eth_blockNumber"), 16) == 3
        assert node.revert(snapshot) is True
        assert int(node.rpc("eth_blockNumber"), 16) == 0


def test_missing_binary_tells_to_run_npm_ci(tmp_path, monkeypatch):
    monkeypatch.delenv("ANVIL_BINARY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AnvilError, match="npm ci"):
        anvil_binary(tmp_path)


def test_a_binary_that_does_not_start_is_reported(tmp_path):
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\necho 'error: bad flag' >&2\nexit 2\n")
    fake.chmod(0o755)
    with pytest.raises(AnvilError, match="bad flag"):
        AnvilNode(binary=fake, startup_timeout=5).start()
