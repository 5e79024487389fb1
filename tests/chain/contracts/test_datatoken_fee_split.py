"""Fee split conservation: provider + marketplace payouts == price, to the base unit, for any price
and any fee the factory allows (0..1,000 bps)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chain.deploy import deploy_contract
from tests.chain.conftest import USDC
from tests.chain.contracts.support import order, receipt_fn, set_fee, withdraw_all

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
        set_fee(chain, fee_bps, accounts.fee_collector.address)
        ds = chain.publish(price=price)
        assert ds.datatoken.functions.feeBps().call() == fee_bps
        provider_before = chain.balance(accounts.provider.address)
        fee_before = chain.balance(accounts.fee_collector.address)
        order_id, terms = order(chain, ds, accounts.buyer, permit=price > 0)
        receipt = chain.tx(accounts.operator, receipt_fn(ds.datatoken, order_id, terms))
        recorded = chain.event(ds.datatoken, "ReceiptRecorded", receipt)
        withdraw_all(chain, ds.datatoken, accounts.provider.address, accounts.fee_collector.address)

        provider_paid = chain.balance(accounts.provider.address) - provider_before
        fee_paid = chain.balance(accounts.fee_collector.address) - fee_before
        assert provider_paid + fee_paid == price
        assert fee_paid == price * fee_bps // 10_000
        assert (recorded.providerAmount, recorded.feeAmount) == (provider_paid, fee_paid)
        assert chain.balance(ds.datatoken.address) == 0
    finally:
        chain.node.revert(snapshot)


def test_split_of_the_largest_price_sums_to_it(chain, accounts):
    """The largest price a v2 datatoken takes (2**96 - 1, PriceTooHigh above) at a 9.99 % fee: the
    split still sums to the price, to the base unit."""
    token_address, _ = deploy_contract(chain.w3, accounts.deployer, "ReentrantToken")
    token = chain.contract("ReentrantToken", token_address)
    chain.tx(accounts.deployer, chain.factory.functions.setPaymentToken(token_address, True))
    price = 2**96 - 1
    set_fee(chain, 999, accounts.fee_collector.address)
    ds = chain.publish(price=price, paymentToken=token_address)
    chain.tx(accounts.buyer, token.functions.mint(accounts.buyer.address, price))
    chain.tx(accounts.buyer, token.functions.approve(ds.datatoken.address, price))
    order_id, terms = order(chain, ds, accounts.buyer, permit=False)
    chain.tx(accounts.operator, receipt_fn(ds.datatoken, order_id, terms))
    withdraw_all(chain, ds.datatoken, accounts.provider.address, accounts.fee_collector.address)
    provider_paid = token.functions.balanceOf(accounts.provider.address).call()
    fee_paid = token.functions.balanceOf(accounts.fee_collector.address).call()
    assert provider_paid + fee_paid == price
    assert fee_paid == price * 999 // 10_000
