"""DataFactory: one-transaction publish with two EIP-1167 clones, and the owner's settings."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError

from chain.artifacts import load_artifact
from tests.chain.conftest import (
    DEFAULT_DELTA_CAP,
    DEFAULT_EPSILON_CAP,
    DEFAULT_PER_JOB_CAP,
    DEFAULT_PRICE,
    FEE_BPS,
    decode_error,
)

pytestmark = pytest.mark.chain

ZERO = "0x0000000000000000000000000000000000000000"
EIP1167_PREFIX = bytes.fromhex("363d3d373d3d3d363d73")


def test_publish_creates_nft_and_datatoken_in_one_transaction(chain, accounts):
    ds = chain.publish()
    published = chain.event(chain.factory, "DatasetPublished", ds.receipt)
    assert published.owner == accounts.provider.address
    assert published.paymentToken == chain.usdc.address
    assert published.price == DEFAULT_PRICE
    assert (published.epsilonCap, published.epsilonPerJobCap, published.deltaCap) == (
        DEFAULT_EPSILON_CAP,
        DEFAULT_PER_JOB_CAP,
        DEFAULT_DELTA_CAP,
    )
    assert published.metadataHash == keccak(text="metadata v1")

    nft, dt = ds.nft, ds.datatoken
    assert nft.functions.ownerOf(1).call() == accounts.provider.address
    assert nft.functions.balanceOf(accounts.provider.address).call() == 1
    assert nft.functions.datatoken().call() == dt.address
    assert nft.functions.factory().call() == chain.factory.address
    assert nft.functions.metadataURI().call() == ds.params["metadataURI"]
    assert nft.functions.tokenURI(1).call() == ds.params["metadataURI"]
    assert nft.functions.metadataHash().call() == ds.params["metadataHash"]
    assert nft.functions.state().call() == 0
    assert nft.functions.name().call() == "Hospital readmissions 2019-2023"
    assert nft.functions.symbol().call() == "PPDX-1"

    assert dt.functions.dataNft().call() == nft.address
    assert dt.functions.factory().call() == chain.factory.address
    assert dt.functions.paymentToken().call() == chain.usdc.address
    assert dt.functions.price().call() == DEFAULT_PRICE
    assert dt.functions.feeBps().call() == FEE_BPS
    assert dt.functions.feeCollector().call() == accounts.fee_collector.address
    assert dt.functions.paymentCollector().call() == accounts.provider.address
    assert dt.functions.epsilonCap().call() == DEFAULT_EPSILON_CAP
    assert dt.functions.epsilonPerJobCap().call() == DEFAULT_PER_JOB_CAP
    assert dt.functions.deltaCap().call() == DEFAULT_DELTA_CAP
    assert dt.functions.epsilonOrdered().call() == 0
    assert dt.functions.epsilonLeft().call() == DEFAULT_EPSILON_CAP
    assert dt.functions.orderCount().call() == 0
    assert dt.functions.orderingOpen().call() is True
    assert dt.functions.operatorOrderingDisabled().call() is False
    assert dt.functions.name().call() == "Hospital readmissions 2019-2023"
    assert dt.functions.symbol().call() == "PPDX-1"
    assert dt.functions.totalSupply().call() == 0
    assert dt.functions.decimals().call() == 18

    assert chain.factory.functions.isDatatoken(dt.address).call() is True
    assert chain.factory.functions.isDatatoken(nft.address).call() is False
    # MetadataUpdated and the NFT mint are part of the same transaction.
    updated = chain.event(nft, "MetadataUpdated", ds.receipt)
    assert (updated.uri, updated.hash, updated.updater) == (
        ds.params["metadataURI"],
        ds.params["metadataHash"],
        accounts.provider.address,
    )


def test_publish_makes_minimal_proxies_with_their_own_name(chain, accounts):
    first = chain.publish()
    second = chain.publish(accounts.stranger, name="Retail baskets", symbol="PPDX-2")
    impl = chain.deployment["contracts"]
    for ds, name in ((first, "DataNFT"), (second, "DataNFT")):
        code = bytes(chain.w3.eth.get_code(ds.nft.address))
        assert code[:10] == EIP1167_PREFIX
        assert Web3.to_checksum_address(code[10:30]) == impl[name]
    code = bytes(chain.w3.eth.get_code(second.datatoken.address))
    assert code[:10] == EIP1167_PREFIX
    assert Web3.to_checksum_address(code[10:30]) == impl["Datatoken"]
    assert first.nft.functions.name().call() == "Hospital readmissions 2019-2023"
    assert second.nft.functions.name().call() == "Retail baskets"
    assert second.datatoken.functions.symbol().call() == "PPDX-2"
    assert second.nft.functions.ownerOf(1).call() == accounts.stranger.address
    assert first.datatoken.address != second.datatoken.address


def test_publish_free_dataset(chain):
    ds = chain.publish(price=0)
    assert ds.datatoken.functions.price().call() == 0


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"paymentToken": ZERO}, ("ZeroAddress", {})),
        ({"epsilonPerJobCap": 0}, ("InvalidCaps", {})),
        ({"epsilonCap": 1_000_000, "epsilonPerJobCap": 1_000_001}, ("InvalidCaps", {})),
    ],
)
def test_publish_refuses_bad_parameters(chain, accounts, overrides, error):
    fn = chain.factory.functions.publish(chain.publish_params(**overrides))
    assert chain.revert(accounts.provider, fn) == error


def test_publish_accepts_per_job_cap_equal_to_total(chain):
    ds = chain.publish(epsilonCap=1_000_000, epsilonPerJobCap=1_000_000)
    assert ds.datatoken.functions.epsilonPerJobCap().call() == 1_000_000


def test_settings_are_owner_only(chain, accounts):
    factory = chain.factory
    assert factory.functions.owner().call() == accounts.deployer.address
    for fn in (
        factory.functions.setOperator(accounts.stranger.address),
        factory.functions.setFee(100, accounts.stranger.address),
    ):
        assert chain.revert(accounts.operator, fn) == (
            "OwnableUnauthorizedAccount",
            {"account": accounts.operator.address},
        )


def test_set_operator(chain, accounts):
    receipt = chain.tx(accounts.deployer, chain.factory.functions.setOperator(accounts.stranger.address))
    assert chain.factory.functions.operator().call() == accounts.stranger.address
    changed = chain.event(chain.factory, "OperatorChanged", receipt)
    assert (changed.oldOperator, changed.newOperator) == (accounts.operator.address, accounts.stranger.address)
    assert chain.revert(accounts.deployer, chain.factory.functions.setOperator(ZERO)) == ("ZeroAddress", {})


def test_set_fee_applies_to_new_datasets_only(chain, accounts):
    old = chain.publish()
    receipt = chain.tx(accounts.deployer, chain.factory.functions.setFee(1_000, accounts.stranger.address))
    changed = chain.event(chain.factory, "FeeChanged", receipt)
    assert (changed.feeBps, changed.feeCollector) == (1_000, accounts.stranger.address)
    assert chain.factory.functions.feeBps().call() == 1_000
    assert chain.factory.functions.feeCollector().call() == accounts.stranger.address
    new = chain.publish()
    assert new.datatoken.functions.feeBps().call() == 1_000
    assert new.datatoken.functions.feeCollector().call() == accounts.stranger.address
    assert old.datatoken.functions.feeBps().call() == FEE_BPS
    assert old.datatoken.functions.feeCollector().call() == accounts.fee_collector.address


def test_set_fee_refuses_too_high_or_zero_collector(chain, accounts):
    fn = chain.factory.functions.setFee(1_001, accounts.stranger.address)
    assert chain.revert(accounts.deployer, fn) == ("FeeTooHigh", {"bps": 1_001})
    fn = chain.factory.functions.setFee(100, ZERO)
    assert chain.revert(accounts.deployer, fn) == ("ZeroAddress", {})


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (lambda d, a: (ZERO, d["Datatoken"], a.operator.address, a.fee_collector.address, 250), ("ZeroAddress", {})),
        (lambda d, a: (d["DataNFT"], ZERO, a.operator.address, a.fee_collector.address, 250), ("ZeroAddress", {})),
        (lambda d, a: (d["DataNFT"], d["Datatoken"], ZERO, a.fee_collector.address, 250), ("ZeroAddress", {})),
        (lambda d, a: (d["DataNFT"], d["Datatoken"], a.operator.address, ZERO, 250), ("ZeroAddress", {})),
        (
            lambda d, a: (d["DataNFT"], d["Datatoken"], a.operator.address, a.fee_collector.address, 1_001),
            ("FeeTooHigh", {"bps": 1_001}),
        ),
    ],
)
def test_constructor_refuses_bad_arguments(chain, accounts, args, error):
    artifact = load_artifact("DataFactory")
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    fn = factory.constructor(*args(chain.deployment["contracts"], accounts))
    with pytest.raises(ContractLogicError) as exc:
        fn.estimate_gas({"from": accounts.deployer.address})
    assert decode_error(exc.value.data) == error
