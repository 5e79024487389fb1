"""A malicious payment token calls back into the datatoken while it moves money (an order's payment,
a withdrawal of credits): the reentrancy guard refuses the callback, the outer call completes once,
and the balances are exactly right."""

from __future__ import annotations

import pytest

from chain.deploy import deploy_contract
from tests.chain.conftest import FEE_BPS, decode_error
from tests.chain.contracts.support import order, receipt_fn, refund_fn

pytestmark = pytest.mark.chain

PRICE = 50 * 10**6
ZERO = "0x0000000000000000000000000000000000000000"
ATTACK_BUY_AND_ORDER = 1
ATTACK_DISPENSE_AND_ORDER = 2
ATTACK_WITHDRAW = 3


@pytest.fixture
def evil(chain, accounts):
    """A dataset priced in ReentrantToken (allow-listed); the buyer holds 1,000 tokens and approved the datatoken."""
    address, _ = deploy_contract(chain.w3, accounts.deployer, "ReentrantToken")
    token = chain.contract("ReentrantToken", address)
    chain.tx(accounts.deployer, chain.factory.functions.setPaymentToken(address, True))
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
    chain.tx(accounts.stranger, token.functions.arm(dt.address, attack, ZERO))
    order_id, _ = chain.buy(ds, accounts.buyer, epsilon=500_000, permit=False, nonce=1)
    assert_refused_by_guard(chain, token)
    assert order_id == 1
    assert dt.functions.orderStatus(order_id).call() == 1
    assert dt.functions.epsilonOrdered().call() == 500_000
    assert token.functions.balanceOf(dt.address).call() == PRICE
    assert token.functions.balanceOf(accounts.buyer.address).call() == 1_000 * 10**6 - PRICE


def test_reentry_while_withdrawing_a_refund(chain, accounts, evil):
    token, ds = evil
    dt = ds.datatoken
    order_id, terms = order(chain, ds, accounts.buyer, permit=False)
    order(chain, ds, accounts.buyer, permit=False)  # a second order keeps money in escrow to steal
    chain.tx(accounts.operator, refund_fn(dt, order_id, terms))
    chain.tx(accounts.stranger, token.functions.arm(dt.address, ATTACK_WITHDRAW, accounts.buyer.address))
    chain.tx(accounts.stranger, dt.functions.withdraw(accounts.buyer.address))
    assert_refused_by_guard(chain, token)
    assert dt.functions.orderStatus(order_id).call() == 3
    assert dt.functions.credits(accounts.buyer.address).call() == 0
    assert token.functions.balanceOf(dt.address).call() == PRICE == dt.functions.held().call()
    assert token.functions.balanceOf(accounts.buyer.address).call() == 1_000 * 10**6 - PRICE


def test_reentry_while_withdrawing_a_receipts_payment(chain, accounts, evil):
    token, ds = evil
    dt = ds.datatoken
    order_id, terms = order(chain, ds, accounts.buyer, permit=False)
    order(chain, ds, accounts.buyer, permit=False)
    chain.tx(accounts.operator, receipt_fn(dt, order_id, terms))
    chain.tx(accounts.stranger, token.functions.arm(dt.address, ATTACK_WITHDRAW, accounts.provider.address))
    chain.tx(accounts.stranger, dt.functions.withdraw(accounts.provider.address))
    assert_refused_by_guard(chain, token)
    fee = PRICE * FEE_BPS // 10_000
    assert token.functions.balanceOf(accounts.provider.address).call() == PRICE - fee
    assert dt.functions.credits(accounts.fee_collector.address).call() == fee
    assert token.functions.balanceOf(dt.address).call() == PRICE + fee == dt.functions.held().call()
    assert dt.functions.orderStatus(order_id).call() == 2
