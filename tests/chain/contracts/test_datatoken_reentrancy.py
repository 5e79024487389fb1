"""A malicious payment token calls back into the datatoken while it moves money: the reentrancy
guard refuses the callback, the outer call completes once, and the balances are exactly right."""

from __future__ import annotations

import pytest

from chain.deploy import deploy_contract
from tests.chain.conftest import FEE_BPS, decode_error
from tests.chain.contracts.support import receipt_fn

pytestmark = pytest.mark.chain

PRICE = 50 * 10**6
ATTACK_BUY_AND_ORDER = 1
ATTACK_DISPENSE_AND_ORDER = 2
ATTACK_REFUND = 3
ATTACK_RECORD_RECEIPT = 4


@pytest.fixture
def evil(chain, accounts):
    """A dataset priced in ReentrantToken; the buyer holds 1,000 tokens and approved the datatoken."""
    address, _ = deploy_contract(chain.w3, accounts.deployer, "ReentrantToken")
    token = chain.contract("ReentrantToken", address)
    ds = chain.publish(price=PRICE, paymentToken=address)
    chain.tx(accounts.buyer, token.functions.mint(accounts.buyer.address, 1_000 * 10**6))
    chain.tx(accounts.buyer, token.functions.approve(ds.datatoken.address, 10 * PRICE))
    return token, ds


def assert_refused_by_guard(chain, token):
    assert token.functions.attackAttempted().call() is True
    assert token.functions.attackSucceeded().call() is False
    assert decode_error(token.functions.attackRevertData().call()) == ("ReentrancyGuardReentrantCall", {})


@pytest.mark.parametrize("attack", [ATTACK_BUY_AND_ORDER, ATTACK_DISPENSE_AND_ORDER])
def test_reentry_while_paying_for_an_order(chain, accounts, evil, attack):
    token, ds = evil
    dt = ds.datatoken
    chain.tx(accounts.stranger, token.functions.arm(dt.address, attack, 0))
    order_id, _ = chain.buy(ds, accounts.buyer, epsilon=500_000, permit=False)
    assert_refused_by_guard(chain, token)
    assert order_id == 1
    assert dt.functions.orderCount().call() == 1
    assert dt.functions.epsilonOrdered().call() == 500_000
    assert token.functions.balanceOf(dt.address).call() == PRICE
    assert token.functions.balanceOf(accounts.buyer.address).call() == 1_000 * 10**6 - PRICE


def test_reentry_while_refunding(chain, accounts, evil):
    token, ds = evil
    dt = ds.datatoken
    order_id, _ = chain.buy(ds, accounts.buyer, permit=False)
    chain.buy(ds, accounts.buyer, permit=False)  # a second order keeps money in escrow to steal
    chain.tx(accounts.stranger, token.functions.arm(dt.address, ATTACK_REFUND, order_id))
    chain.tx(accounts.operator, dt.functions.refund(order_id))
    assert_refused_by_guard(chain, token)
    assert dt.functions.orderStatus(order_id).call() == 3
    assert token.functions.balanceOf(dt.address).call() == PRICE
    assert token.functions.balanceOf(accounts.buyer.address).call() == 1_000 * 10**6 - PRICE


def test_reentry_while_paying_out_a_receipt(chain, accounts, evil):
    token, ds = evil
    dt = ds.datatoken
    order_id, _ = chain.buy(ds, accounts.buyer, permit=False)
    chain.buy(ds, accounts.buyer, permit=False)
    chain.tx(accounts.stranger, token.functions.arm(dt.address, ATTACK_RECORD_RECEIPT, order_id))
    chain.tx(accounts.operator, receipt_fn(dt, order_id, 0))
    assert_refused_by_guard(chain, token)
    fee = PRICE * FEE_BPS // 10_000
    assert token.functions.balanceOf(accounts.provider.address).call() == PRICE - fee
    assert token.functions.balanceOf(accounts.fee_collector.address).call() == fee
    assert token.functions.balanceOf(dt.address).call() == PRICE
    assert dt.functions.orderStatus(order_id).call() == 2
