"""DataFactory: one-transaction publish with two EIP-1167 clones, and the owner's settings (contracts
v2: Ownable2Step, no renouncing, operator and fee changes behind a delay, a payment-token allow-list)."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError

from chain.artifacts import load_artifact
from tests.chain.conftest import (
    DEFAULT_DELTA_CAP,
    DEFAULT_DELTA_PER_JOB_CAP,
    DEFAULT_EPSILON_CAP,
    DEFAULT_PER_JOB_CAP,
    DEFAULT_PRICE,
    FEE_BPS,
    decode_error,
)

pytestmark = pytest.mark.chain

ZERO = "0x0000000000000000000000000000000000000000"
EIP1167_PREFIX = bytes.fromhex("363d3d373d3d3d363d73")
WINDOW = 7 * 24 * 3600
DELAY = 2 * 24 * 3600


def test_publish_creates_nft_and_datatoken_in_one_transaction(chain, accounts):
    ds = chain.publish(open_=False)
    published = chain.event(chain.factory, "DatasetPublished", ds.receipt)
    assert published.owner == accounts.provider.address
    assert published.paymentToken == chain.usdc.address
    assert published.price == DEFAULT_PRICE
    assert (published.epsilonCap, published.epsilonPerJobCap, published.deltaCap, published.deltaPerJobCap) == (
        DEFAULT_EPSILON_CAP,
        DEFAULT_PER_JOB_CAP,
        DEFAULT_DELTA_CAP,
        DEFAULT_DELTA_PER_JOB_CAP,
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
    assert dt.functions.deltaPerJobCap().call() == DEFAULT_DELTA_PER_JOB_CAP
    assert dt.functions.epsilonOrdered().call() == 0 == dt.functions.deltaOrdered().call()
    assert dt.functions.epsilonLeft().call() == DEFAULT_EPSILON_CAP
    assert dt.functions.deltaLeft().call() == DEFAULT_DELTA_CAP
    assert dt.functions.orderWindow().call() == 7 * 24 * 3600
    # A new datatoken is closed until the operator opens it (when a moderator lists the dataset).
    assert dt.functions.orderingOpen().call() is False
    assert dt.functions.operatorOrderingDisabled().call() is True
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
        ({"paymentToken": ZERO}, ("PaymentTokenNotAllowed", {"token": ZERO})),
        ({"epsilonPerJobCap": 0}, ("InvalidCaps", {})),
        ({"epsilonCap": 1_000_000, "epsilonPerJobCap": 1_000_001}, ("InvalidCaps", {})),
        ({"deltaCap": 10, "deltaPerJobCap": 11}, ("InvalidCaps", {})),
        ({"price": 2**96}, ("PriceTooHigh", {"price": 2**96})),
    ],
)
def test_publish_refuses_bad_parameters(chain, accounts, overrides, error):
    fn = chain.factory.functions.publish(chain.publish_params(**overrides))
    assert chain.revert(accounts.provider, fn) == error


def test_publish_accepts_per_job_cap_equal_to_total(chain):
    ds = chain.publish(epsilonCap=1_000_000, epsilonPerJobCap=1_000_000)
    assert ds.datatoken.functions.epsilonPerJobCap().call() == 1_000_000


def test_a_payment_token_must_be_allowed(chain, accounts):
    token = chain.deployment["contracts"]["DataNFT"]  # any address the factory does not allow
    fn = chain.factory.functions.publish(chain.publish_params(paymentToken=token))
    assert chain.revert(accounts.provider, fn) == ("PaymentTokenNotAllowed", {"token": token})
    receipt = chain.tx(accounts.deployer, chain.factory.functions.setPaymentToken(token, True))
    assert chain.event(chain.factory, "PaymentTokenAllowed", receipt).allowed is True
    assert chain.factory.functions.isPaymentToken(token).call() is True


def test_settings_are_owner_only(chain, accounts):
    factory = chain.factory
    assert factory.functions.owner().call() == accounts.deployer.address
    for fn in (
        factory.functions.proposeOperator(accounts.stranger.address),
        factory.functions.proposeFee(100, accounts.stranger.address),
        factory.functions.setPaymentToken(accounts.stranger.address, True),
        factory.functions.transferOwnership(accounts.stranger.address),
    ):
        assert chain.revert(accounts.operator, fn) == (
            "OwnableUnauthorizedAccount",
            {"account": accounts.operator.address},
        )


def test_ownership_cannot_be_renounced_and_moves_in_two_steps(chain, accounts):
    factory = chain.factory
    assert chain.revert(accounts.deployer, factory.functions.renounceOwnership()) == ("RenounceDisabled", {})
    chain.tx(accounts.deployer, factory.functions.transferOwnership(accounts.stranger.address))
    assert factory.functions.owner().call() == accounts.deployer.address
    assert factory.functions.pendingOwner().call() == accounts.stranger.address
    chain.tx(accounts.stranger, factory.functions.acceptOwnership())
    assert factory.functions.owner().call() == accounts.stranger.address


def test_operator_change_waits_for_the_delay(chain, accounts):
    factory = chain.factory
    receipt = chain.tx(accounts.deployer, factory.functions.proposeOperator(accounts.stranger.address))
    eta = chain.event(factory, "OperatorProposed", receipt).eta
    assert eta == chain.timestamp() + 2 * 24 * 3600
    assert factory.functions.pendingOperator().call() == [accounts.stranger.address, eta]
    assert chain.revert(accounts.buyer, factory.functions.applyOperator()) == ("TooEarly", {"eta": eta})
    assert factory.functions.operator().call() == accounts.operator.address
    chain.increase_time(2 * 24 * 3600)
    receipt = chain.tx(accounts.buyer, factory.functions.applyOperator())  # anyone applies it
    assert factory.functions.operator().call() == accounts.stranger.address
    changed = chain.event(factory, "OperatorChanged", receipt)
    assert (changed.oldOperator, changed.newOperator) == (accounts.operator.address, accounts.stranger.address)
    assert chain.revert(accounts.buyer, factory.functions.applyOperator()) == ("NothingPending", {})
    assert chain.revert(accounts.deployer, factory.functions.proposeOperator(ZERO)) == ("ZeroAddress", {})


def test_a_fee_change_waits_for_the_delay_and_applies_to_new_datasets_only(chain, accounts):
    old = chain.publish()
    receipt = chain.tx(accounts.deployer, chain.factory.functions.proposeFee(1_000, accounts.stranger.address))
    eta = chain.event(chain.factory, "FeeProposed", receipt).eta
    assert chain.revert(accounts.buyer, chain.factory.functions.applyFee()) == ("TooEarly", {"eta": eta})
    assert chain.factory.functions.feeBps().call() == FEE_BPS
    chain.increase_time(2 * 24 * 3600)
    receipt = chain.tx(accounts.buyer, chain.factory.functions.applyFee())
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
    fn = chain.factory.functions.proposeFee(1_001, accounts.stranger.address)
    assert chain.revert(accounts.deployer, fn) == ("FeeTooHigh", {"bps": 1_001})
    fn = chain.factory.functions.proposeFee(100, ZERO)
    assert chain.revert(accounts.deployer, fn) == ("ZeroAddress", {})


def _constructor_args(d, a, **changed):
    """The factory constructor's arguments, with ``changed`` ones replaced (by parameter name)."""
    args = {
        "nft": d["DataNFT"],
        "datatoken": d["Datatoken"],
        "operator": a.operator.address,
        "fee_collector": a.fee_collector.address,
        "fee_bps": 250,
        "window": WINDOW,
        "delay": DELAY,
    }
    return tuple({**args, **changed}.values())


@pytest.mark.parametrize(
    ("changed", "error"),
    [
        ({"nft": ZERO}, ("ZeroAddress", {})),
        ({"datatoken": ZERO}, ("ZeroAddress", {})),
        ({"operator": ZERO}, ("ZeroAddress", {})),
        ({"fee_collector": ZERO}, ("ZeroAddress", {})),
        ({"fee_bps": 1_001}, ("FeeTooHigh", {"bps": 1_001})),
        ({"window": 3599}, ("InvalidOrderWindow", {"window": 3599})),
        ({"delay": 3600}, ("InvalidParameterDelay", {"delay": 3600})),
    ],
)
def test_constructor_refuses_bad_arguments(chain, accounts, changed, error):
    artifact = load_artifact("DataFactory")
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    fn = factory.constructor(*_constructor_args(chain.deployment["contracts"], accounts, **changed))
    with pytest.raises(ContractLogicError) as exc:
        fn.estimate_gas({"from": accounts.deployer.address})
    assert decode_error(exc.value.data) == error
