"""The embedded chain of `make run` and `manage.py chain_deploy`, against real anvil processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from web3 import Web3

from chain.faucet import dev_account, fund_address
from chain.wrappers import MockStablecoin
from devtools.embedded import StaleContracts, start_embedded_chain
from devtools.node import AnvilNode

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parents[2]


def test_embedded_chain_deploys_once_and_survives_a_restart(tmp_path):
    first = start_embedded_chain(tmp_path)
    try:
        assert first.deployed_now
        w3 = Web3(Web3.HTTPProvider(first.node.rpc_url))
        buyer = "0x000000000000000000000000000000000000bEEF"
        fund_address(w3, first.deployment, buyer)
        token = MockStablecoin(w3, first.deployment["contracts"]["MockStablecoin"])
        assert token.balance_of(buyer) == 1_000 * 10**6
        env = first.environment(tmp_path / "chain" / "deployments.json")
        assert env["CHAIN_RPC_URL"] == first.node.rpc_url and env["CHAIN_ID"] == "31337"
    finally:
        first.node.stop()
    # Restarts seconds apart: anvil rebuilds the genesis block each time, and it must stay the same
    # block (same hash) or the chain would look new and everything would be deployed again.
    for _ in range(2):
        time.sleep(1.5)
        again = start_embedded_chain(tmp_path)
        try:
            assert not again.deployed_now, "the contracts were deployed again after a restart"
            assert again.deployment["contracts"] == first.deployment["contracts"]
            w3 = Web3(Web3.HTTPProvider(again.node.rpc_url))
            assert w3.eth.get_block(0)["hash"].to_0x_hex() == first.deployment["genesis_hash"]
            token = MockStablecoin(w3, again.deployment["contracts"]["MockStablecoin"])
            assert token.balance_of(buyer) == 1_000 * 10**6  # balances survived too
        finally:
            again.node.stop()


def test_an_embedded_chain_with_contracts_of_another_version_is_refused_with_what_to_do(tmp_path):
    first = start_embedded_chain(tmp_path)
    first.node.stop()
    # As a chain deployed from v1 sources looks to a checkout with v2 artifacts.
    deployment_file = tmp_path / "chain" / "deployments.json"
    written = json.loads(deployment_file.read_text())
    written[str(first.deployment["chain_id"])]["contracts_source_hash"] = "0x" + "00" * 32
    deployment_file.write_text(json.dumps(written))
    time.sleep(1.5)
    with pytest.raises(StaleContracts, match="make clean"):
        start_embedded_chain(tmp_path)


def test_chain_deploy_command_writes_the_deployment_file_and_checks_the_chain_id(tmp_path, monkeypatch):
    with AnvilNode(chain_id=4242) as node:
        monkeypatch.setenv("CHAIN_DEPLOYER_KEY", dev_account("m/44'/60'/0'/0/0").key.hex())
        path = tmp_path / "deployments.json"
        with pytest.raises(CommandError, match="Wrong chain: the node reports chain id 4242, expected 1"):
            call_command("chain_deploy", rpc_url=node.rpc_url, deployment_file=str(path), expect_chain_id=1)
        call_command("chain_deploy", rpc_url=node.rpc_url, deployment_file=str(path), fee_bps=100)
        entry = json.loads(path.read_text())["4242"]
        assert entry["fee_bps"] == 100 and "MockStablecoin" not in entry["contracts"]
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        assert w3.eth.get_code(entry["contracts"]["DataFactory"]) not in (b"", b"\x00")
    with pytest.raises(CommandError, match="Cannot reach the chain at http://127.0.0.1:9"):
        call_command("chain_deploy", rpc_url="http://127.0.0.1:9", deployment_file=str(path))


def test_worker_refuses_to_start_on_an_unreachable_chain(tmp_path):
    """The Celery worker stops at start with a message naming the RPC it could not reach."""
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "ERROR"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "MARKETPLACE_DATA_DIR": str(tmp_path),
            "CHAIN_RPC_URL": "http://127.0.0.1:9",
            "CELERY_BROKER_URL": "memory://",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "cannot start: Cannot reach the chain at http://127.0.0.1:9" in result.stderr + result.stdout


@pytest.mark.integration
def test_make_run_setup_deploys_funds_the_demo_wallets_and_publishes_the_demo_datasets(tmp_path):
    """What `make run` does before serving, in a fresh data folder: chain, demo users, their funded
    managed wallets, the provider's datasets on chain, and the buyer's demo jobs with their receipts
    (and one refund); a second start adds nothing."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "MARKETPLACE_DATA_DIR": str(tmp_path),
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    result = subprocess.run(
        [*manage, "run_embedded", "--no-serve", "--port", "8765"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "deployed the contracts" in out
    assert out.count("(funded with test ether and USDC)") == 3
    assert out.count(": Published") == 5, out
    assert "password: buyer-demo-2026" in out
    deployments = json.loads((tmp_path / "chain" / "deployments.json").read_text())
    assert set(deployments["31337"]["contracts"]) == {"MockStablecoin", "DataNFT", "Datatoken", "DataFactory"}
    assert (tmp_path / "chain" / "anvil-state.json").exists()  # saved on the way out
    # The demo buyer's jobs ran inline, in the sandbox, and were settled on chain.
    assert out.count("Finished (receipt recorded, payment released)") == 3, out
    assert out.count("Cancelled (refunded)") == 1, out
    assert "demo jobs: 4 in" in out

    again = subprocess.run(
        [*manage, "run_embedded", "--no-serve", "--port", "8765"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "contracts already deployed" in again.stdout
    assert "seeded:" not in again.stdout and "demo job" not in again.stdout, again.stdout
    rows = subprocess.run(
        [
            *manage,
            "shell",
            "-v0",
            "-c",
            "from compute_to_data.models import ComputeJob as J; from chain.models import Order as O; "
            "jobs, orders = J.objects.values_list('status', flat=True), O.objects.values_list('status', flat=True); "
            "print(sorted(jobs), sorted(orders))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    jobs, orders = ["cancelled"] + ["finished"] * 3, ["receipted"] * 3 + ["refunded"]
    assert rows == f"{jobs} {orders}", rows
