"""Fee split conservation: provider + marketplace payouts == price, to the base unit, for any price
and any fee the factory allows (0..1,000 bps)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chain.deploy import deploy_contract
from tests.chain.conftest import USDC
from tests.chain.contracts.support import receipt_fn

pytestmark = pytest.mark.chain


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(price=st.integers(min_value=0, max_value=1_000 * USDC), fee_bps=st.integers(min_value=0, max_value=1_000))
@example(price=1, fee_bps=1_000)
@example(price=9_999, fee_bps=1)
@example(price=1_000 * USDC, fee_bps=1_000)
@example(price=3, fee_bps=333)
def test_payouts_sum_to_the_price(chain, accounts, price, fee_bps):
    snapshot = chain.node.snapshot()
    try:
        chain.tx(accounts.deployer, chain.factory.functions.setFee(fee_bps, accounts.fee_collector.address))
        ds = chain.publish(price=price)
        provider_before = chain.balance(accounts.provider.address)
        fee_before = chain.balance(accounts.fee_collector.address)
        order_id, _ = chain.buy(ds, accounts.buyer)
        receipt = chain.tx(accounts.operator, receipt_fn(ds.datatoken, order_id, 1))
        recorded = chain.event(ds.datatoken, "ReceiptRecorded", receipt)

        provider_paid = chain.balance(accounts.provider.address) - provider_before
        fee_paid = chain.balance(accounts.fee_collector.address) - fee_before
        assert provider_paid + fee_paid == price
        assert fee_paid == price * fee_bps // 10_000
        assert (recorded.providerAmount, recorded.feeAmount) == (provider_paid, fee_paid)
        assert chain.balance(ds.datatoken.address) == 0
    finally:
        chain.node.revert(snapshot)


def test_split_of_a_huge_price_does_not_overflow(chain, accounts):
    """price * feeBps would overflow 256 bits; the split still sums to the price."""
    token_address, _ = deploy_contract(chain.w3, accounts.deployer, "ReentrantToken")
    token = chain.contract("ReentrantToken", token_address)
    price = 2**256 - 1
    chain.tx(accounts.deployer, chain.factory.functions.setFee(999, accounts.fee_collector.address))
    ds = chain.publish(price=price, paymentToken=token_address)
    chain.tx(accounts.buyer, token.functions.mint(accounts.buyer.address, price))
    chain.tx(accounts.buyer, token.functions.approve(ds.datatoken.address, price))
    order_id, _ = chain.buy(ds, accounts.buyer, permit=False)
    chain.tx(accounts.operator, receipt_fn(ds.datatoken, order_id, 0))
    provider_paid = token.functions.balanceOf(accounts.provider.address).call()
    fee_paid = token.functions.balanceOf(accounts.fee_collector.address).call()
    assert provider_paid + fee_paid == price
    assert fee_paid == price * 999 // 10_000
