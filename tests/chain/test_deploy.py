"""chain.deploy: the deployment dict and the per-chain deployment file."""

from __future__ import annotations

import json

import pytest
from web3 import Web3

from chain.deploy import DeploymentError, deploy_contracts, read_deployment_file, write_deployment_file

pytestmark = pytest.mark.chain


def test_deployment_dict(chain, accounts):
    deployment = chain.deployment
    assert deployment["chain_id"] == 31337
    assert deployment["genesis_hash"] == chain.w3.eth.get_block(0)["hash"].to_0x_hex()
    assert deployment["deployed_at_block"] == 1
    assert set(deployment["contracts"]) == {"MockStablecoin", "DataNFT", "Datatoken", "DataFactory"}
    for address in deployment["contracts"].values():
        assert Web3.is_checksum_address(address)
        assert len(chain.w3.eth.get_code(address)) > 0
    assert (deployment["operator"], deployment["fee_collector"], deployment["fee_bps"]) == (
        accounts.operator.address,
        accounts.fee_collector.address,
        250,
    )
    factory = chain.factory
    assert factory.functions.nftImplementation().call() == deployment["contracts"]["DataNFT"]
    assert factory.functions.datatokenImplementation().call() == deployment["contracts"]["Datatoken"]
    assert factory.functions.operator().call() == accounts.operator.address
    assert factory.functions.owner().call() == accounts.deployer.address
    # Contracts v2: the order window and parameter delay, and the stablecoin allow-listed.
    assert (deployment["order_window"], deployment["parameter_delay"]) == (7 * 24 * 3600, 2 * 24 * 3600)
    assert factory.functions.orderWindow().call() == 7 * 24 * 3600
    assert factory.functions.parameterDelay().call() == 2 * 24 * 3600
    assert deployment["payment_tokens"] == [deployment["contracts"]["MockStablecoin"]]
    assert factory.functions.isPaymentToken(deployment["contracts"]["MockStablecoin"]).call()
    json.dumps(deployment)  # JSON-able as it is


def test_deploy_without_mock_stablecoin(chain, accounts):
    deployment = deploy_contracts(
        chain.w3,
        accounts.stranger,
        operator=accounts.stranger.address,
        fee_collector=accounts.stranger.address,
        fee_bps=0,
        with_mock_stablecoin=False,
    )
    assert set(deployment["contracts"]) == {"DataNFT", "Datatoken", "DataFactory"}
    assert deployment["fee_bps"] == 0


@pytest.mark.parametrize(
    ("field", "value"), [("order_window", 3599), ("order_window", 366 * 24 * 3600), ("parameter_delay", 3600)]
)
def test_deploy_refuses_an_order_window_or_delay_out_of_bounds(chain, accounts, field, value):
    with pytest.raises(DeploymentError, match=field):
        deploy_contracts(
            chain.w3,
            accounts.stranger,
            operator=accounts.stranger.address,
            fee_collector=accounts.stranger.address,
            **{field: value},
        )


def test_deploy_refuses_a_fee_above_ten_percent(chain, accounts):
    with pytest.raises(DeploymentError, match="fee_bps"):
        deploy_contracts(
            chain.w3,
            accounts.stranger,
            operator=accounts.stranger.address,
            fee_collector=accounts.stranger.address,
            fee_bps=1_001,
        )


def test_deployment_file_keeps_other_chains(tmp_path, chain):
    path = tmp_path / "sub" / "deployments.json"
    assert read_deployment_file(path, 31337) is None
    write_deployment_file(path, chain.deployment)
    other = {**chain.deployment, "chain_id": 11155111}
    write_deployment_file(path, other)
    assert read_deployment_file(path, 31337) == chain.deployment
    assert read_deployment_file(path, 11155111) == other
    assert read_deployment_file(path, 1) is None
    assert set(json.loads(path.read_text())) == {"31337", "11155111"}
    # Redeploying a chain replaces its entry only.
    write_deployment_file(path, {**chain.deployment, "deployed_at_block": 99})
    assert read_deployment_file(path, 31337)["deployed_at_block"] == 99
    assert read_deployment_file(path, 11155111) == other


def test_unreadable_deployment_file(tmp_path):
    path = tmp_path / "deployments.json"
    path.write_text("{not json")
    with pytest.raises(DeploymentError, match="not valid JSON"):
        read_deployment_file(path, 31337)
