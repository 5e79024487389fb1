"""Datatoken escrow (contracts v2): a receipt credits provider and marketplace and charges exactly the
reservation, a refund credits the buyer and releases it, after the deadline the buyer reclaims;
credits are withdrawn (pull payments); an order is settled once. Plus the price and payment
collector settings."""

from __future__ import annotations

import pytest

from tests.chain.conftest import DEFAULT_PRICE, DELTA_1E5, FEE_BPS, ORDER_WINDOW
from tests.chain.contracts.support import HASHES, dispensed, order, receipt_fn, refund_fn

pytestmark = pytest.mark.chain

FEE = DEFAULT_PRICE * FEE_BPS // 10_000


def _withdraw(chain, dt, account) -> int:
    """Withdraw ``account``'s credits (sent by a stranger: anyone may); the amount paid."""
    before = chain.balance(account)
    receipt = chain.tx(chain.accounts.stranger, dt.functions.withdraw(account))
    assert chain.event(dt, "Withdrawn", receipt).account == account
    return chain.balance(account) - before


def test_receipt_credits_provider_and_fee_collector_and_charges_the_reservation(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, terms = order(chain, dataset, accounts.buyer, epsilon=800_000)
    provider_before = chain.balance(accounts.provider.address)

    receipt = chain.tx(accounts.operator, receipt_fn(dt, order_id, terms))

    recorded = chain.event(dt, "ReceiptRecorded", receipt)
    assert recorded.orderId == order_id
    assert {k: recorded[k] for k in HASHES} == HASHES
    assert (recorded.epsilon, recorded.delta) == (800_000, DELTA_1E5)
    assert (recorded.providerAmount, recorded.feeAmount) == (DEFAULT_PRICE - FEE, FEE)
    # Pull payments: nothing moved yet, both are credited.
    assert chain.balance(accounts.provider.address) == provider_before
    assert dt.functions.credits(accounts.provider.address).call() == DEFAULT_PRICE - FEE
    assert dt.functions.credits(accounts.fee_collector.address).call() == FEE
    assert chain.balance(dt.address) == DEFAULT_PRICE == dt.functions.held().call()
    assert _withdraw(chain, dt, accounts.provider.address) == DEFAULT_PRICE - FEE
    assert _withdraw(chain, dt, accounts.fee_collector.address) == FEE
    assert chain.balance(dt.address) == 0 == dt.functions.held().call()
    assert dt.functions.orderStatus(order_id).call() == 2
    assert dt.functions.epsilonOrdered().call() == 800_000  # a receipt charges the whole reservation
    assert dt.functions.deltaOrdered().call() == DELTA_1E5
    assert chain.revert(accounts.stranger, dt.functions.withdraw(accounts.provider.address)) == (
        "NothingToWithdraw",
        {"account": accounts.provider.address},
    )


def test_a_receipt_or_refund_with_other_terms_is_refused(chain, dataset, accounts):
    order_id, terms = order(chain, dataset, accounts.buyer, epsilon=800_000)
    consumer, epsilon, delta, amount, deadline = terms
    for changed in (
        (accounts.buyer2.address, epsilon, delta, amount, deadline),
        (consumer, epsilon - 1, delta, amount, deadline),
        (consumer, epsilon, delta, amount, deadline + 1),
    ):
        mismatch = ("OrderMismatch", {"orderId": order_id})
        assert chain.revert(accounts.operator, receipt_fn(dataset.datatoken, order_id, changed)) == mismatch
        assert chain.revert(accounts.operator, refund_fn(dataset.datatoken, order_id, changed)) == mismatch


def test_order_is_settled_once(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, terms = order(chain, dataset, accounts.buyer)
    chain.tx(accounts.operator, receipt_fn(dt, order_id, terms))
    assert chain.revert(accounts.operator, receipt_fn(dt, order_id, terms)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 2},
    )
    assert chain.revert(accounts.operator, refund_fn(dt, order_id, terms)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 2},
    )
    chain.increase_time(ORDER_WINDOW + 1)
    assert chain.revert(accounts.buyer, dt.functions.reclaim(order_id, terms)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 2},
    )
    assert chain.balance(dt.address) == DEFAULT_PRICE == dt.functions.held().call()  # credits, not escrow


def test_unknown_order_cannot_be_settled(chain, dataset, accounts):
    dt = dataset.datatoken
    terms = (accounts.buyer.address, 1, 0, 0, 0)
    assert chain.revert(accounts.operator, receipt_fn(dt, 7, terms)) == ("OrderNotOpen", {"orderId": 7, "status": 0})
    assert chain.revert(accounts.operator, refund_fn(dt, 7, terms)) == ("OrderNotOpen", {"orderId": 7, "status": 0})


def test_refund_credits_the_payment_and_releases_the_budget(chain, dataset, accounts):
    dt = dataset.datatoken
    buyer_before = chain.balance(accounts.buyer.address)
    order_id, terms = order(chain, dataset, accounts.buyer, epsilon=900_000)
    other_id, _ = order(chain, dataset, accounts.buyer2, epsilon=400_000)
    assert dt.functions.epsilonOrdered().call() == 1_300_000

    receipt = chain.tx(accounts.operator, refund_fn(dt, order_id, terms))

    refunded = chain.event(dt, "OrderRefunded", receipt)
    assert (refunded.orderId, refunded.consumer, refunded.amount, refunded.epsilon, refunded.delta) == (
        order_id,
        accounts.buyer.address,
        DEFAULT_PRICE,
        900_000,
        DELTA_1E5,
    )
    assert _withdraw(chain, dt, accounts.buyer.address) == DEFAULT_PRICE
    assert chain.balance(accounts.buyer.address) == buyer_before
    assert chain.balance(dt.address) == DEFAULT_PRICE  # the other order stays in escrow
    assert dt.functions.orderStatus(order_id).call() == 3
    assert dt.functions.orderStatus(other_id).call() == 1
    assert dt.functions.epsilonOrdered().call() == 400_000
    assert dt.functions.deltaOrdered().call() == DELTA_1E5
    assert chain.revert(accounts.operator, refund_fn(dt, order_id, terms)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 3},
    )
    assert chain.revert(accounts.operator, receipt_fn(dt, order_id, terms)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 3},
    )


def test_after_the_deadline_the_operator_cannot_settle_and_anyone_reclaims_for_the_buyer(chain, dataset, accounts):
    dt = dataset.datatoken
    buyer_before = chain.balance(accounts.buyer.address)
    order_id, terms = order(chain, dataset, accounts.buyer, epsilon=900_000)
    deadline = terms[4]
    assert chain.revert(accounts.stranger, dt.functions.reclaim(order_id, terms)) == (
        "OrderNotExpired",
        {"orderId": order_id, "deadline": deadline},
    )
    chain.increase_time(ORDER_WINDOW + 1)
    expired = ("OrderExpired", {"orderId": order_id, "deadline": deadline})
    assert chain.revert(accounts.operator, receipt_fn(dt, order_id, terms)) == expired
    assert chain.revert(accounts.operator, refund_fn(dt, order_id, terms)) == expired

    receipt = chain.tx(accounts.stranger, dt.functions.reclaim(order_id, terms))

    reclaimed = chain.event(dt, "OrderReclaimed", receipt)
    assert (reclaimed.orderId, reclaimed.consumer, reclaimed.amount, reclaimed.epsilon) == (
        order_id,
        accounts.buyer.address,
        DEFAULT_PRICE,
        900_000,
    )
    assert dt.functions.orderStatus(order_id).call() == 4
    assert dt.functions.epsilonOrdered().call() == 0 and dt.functions.deltaOrdered().call() == 0
    assert _withdraw(chain, dt, accounts.buyer.address) == DEFAULT_PRICE
    assert chain.balance(accounts.buyer.address) == buyer_before


def test_released_budget_can_be_ordered_again(chain, accounts):
    ds = chain.publish(epsilonCap=1_000_000, epsilonPerJobCap=1_000_000)
    order_id, terms = order(chain, ds, accounts.buyer, epsilon=1_000_000)
    assert chain.revert(accounts.buyer2, chain.buy_fn(ds, accounts.buyer2, epsilon=1))[0] == "EpsilonCapExceeded"
    chain.tx(accounts.operator, refund_fn(ds.datatoken, order_id, terms))
    chain.buy(ds, accounts.buyer2, epsilon=1_000_000)


def test_free_order_receipt_and_refund_move_no_money(chain, accounts):
    ds = chain.publish(price=0)
    dt = ds.datatoken
    first, first_terms = dispensed(chain, ds, accounts.buyer, epsilon=500_000, algorithm=HASHES["algorithmHash"])
    second, second_terms = dispensed(chain, ds, accounts.buyer, epsilon=200_000, algorithm=HASHES["algorithmHash"])
    receipt = chain.tx(accounts.operator, receipt_fn(dt, first, first_terms))
    recorded = chain.event(dt, "ReceiptRecorded", receipt)
    assert (recorded.providerAmount, recorded.feeAmount) == (0, 0)
    receipt = chain.tx(accounts.operator, refund_fn(dt, second, second_terms))
    assert chain.event(dt, "OrderRefunded", receipt).amount == 0
    assert dt.functions.epsilonOrdered().call() == 500_000
    assert dt.functions.credits(accounts.buyer.address).call() == 0


def test_settlement_is_operator_only(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, terms = order(chain, dataset, accounts.buyer)
    for caller in (accounts.provider, accounts.buyer, accounts.deployer, accounts.stranger):
        assert chain.revert(caller, receipt_fn(dt, order_id, terms)) == ("NotOperator", {"caller": caller.address})
        assert chain.revert(caller, refund_fn(dt, order_id, terms)) == ("NotOperator", {"caller": caller.address})


def test_a_new_factory_operator_takes_over_after_the_delay(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, terms = order(chain, dataset, accounts.buyer)
    receipt = chain.tx(accounts.deployer, chain.factory.functions.proposeOperator(accounts.stranger.address))
    eta = chain.event(chain.factory, "OperatorProposed", receipt).eta
    assert chain.revert(accounts.stranger, chain.factory.functions.applyOperator()) == ("TooEarly", {"eta": eta})
    chain.increase_time(2 * 24 * 3600)
    chain.tx(accounts.stranger, chain.factory.functions.applyOperator())  # anyone applies it
    assert chain.revert(accounts.operator, refund_fn(dt, order_id, terms)) == (
        "NotOperator",
        {"caller": accounts.operator.address},
    )
    chain.tx(accounts.stranger, refund_fn(dt, order_id, terms))


def test_open_orders_keep_the_price_they_paid(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, terms = order(chain, dataset, accounts.buyer)
    receipt = chain.tx(accounts.provider, dt.functions.setPrice(20 * 10**6))
    changed = chain.event(dt, "PriceChanged", receipt)
    assert (changed.oldPrice, changed.newPrice) == (DEFAULT_PRICE, 20 * 10**6)
    assert dt.functions.price().call() == 20 * 10**6
    assert terms[3] == DEFAULT_PRICE
    assert dt.functions.getOrder(order_id).call()[1] == dt.functions.orderCommitment(terms).call()
    new_id, new_terms = order(chain, dataset, accounts.buyer2)
    assert new_terms[3] == 20 * 10**6

    chain.tx(accounts.operator, refund_fn(dt, order_id, terms))
    assert dt.functions.credits(accounts.buyer.address).call() == DEFAULT_PRICE
    receipt = chain.tx(accounts.operator, receipt_fn(dt, new_id, new_terms))
    recorded = chain.event(dt, "ReceiptRecorded", receipt)
    assert recorded.providerAmount + recorded.feeAmount == 20 * 10**6
    for account in (accounts.buyer.address, accounts.provider.address, accounts.fee_collector.address):
        chain.tx(accounts.stranger, dt.functions.withdraw(account))
    assert chain.balance(dt.address) == 0


def test_set_price_by_owner_or_manager_only(chain, dataset, accounts):
    dt = dataset.datatoken
    chain.tx(accounts.provider, dataset.nft.functions.addManager(accounts.manager.address))
    chain.tx(accounts.manager, dt.functions.setPrice(0))
    assert dt.functions.price().call() == 0
    chain.tx(accounts.provider, dataset.nft.functions.addMetadataUpdater(accounts.updater.address))
    for caller in (accounts.stranger, accounts.updater, accounts.operator):
        assert chain.revert(caller, dt.functions.setPrice(1)) == ("NotAuthorized", {"caller": caller.address})


def test_price_change_switches_between_buy_and_dispenser(chain, dataset, accounts):
    dt = dataset.datatoken
    chain.tx(accounts.provider, dt.functions.setPrice(0))
    dispensed(chain, dataset, accounts.buyer, epsilon=100_000)
    chain.tx(accounts.provider, dt.functions.setPrice(1))
    signed, signature = chain.ticket(dataset, accounts.buyer, epsilon=100_000, delta=0, price=1)
    assert chain.revert(accounts.buyer, dt.functions.dispenseAndOrder(signed.as_tuple(), signature)) == (
        "NotFree",
        {},
    )


def test_payment_collector_is_set_by_the_nft_owner(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, terms = order(chain, dataset, accounts.buyer)
    receipt = chain.tx(accounts.provider, dt.functions.setPaymentCollector(accounts.updater.address))
    changed = chain.event(dt, "PaymentCollectorChanged", receipt)
    assert (changed.oldCollector, changed.newCollector) == (accounts.provider.address, accounts.updater.address)
    chain.tx(accounts.operator, receipt_fn(dt, order_id, terms))
    assert dt.functions.credits(accounts.updater.address).call() == DEFAULT_PRICE - FEE
    assert dt.functions.credits(accounts.provider.address).call() == 0
    before = chain.balance(accounts.updater.address)
    chain.tx(accounts.stranger, dt.functions.withdraw(accounts.updater.address))
    assert chain.balance(accounts.updater.address) == before + DEFAULT_PRICE - FEE


def test_payment_collector_refusals(chain, dataset, accounts):
    dt = dataset.datatoken
    chain.tx(accounts.provider, dataset.nft.functions.addManager(accounts.manager.address))
    for caller in (accounts.manager, accounts.stranger, accounts.operator):
        fn = dt.functions.setPaymentCollector(caller.address)
        assert chain.revert(caller, fn) == ("NotAuthorized", {"caller": caller.address})
    fn = dt.functions.setPaymentCollector("0x0000000000000000000000000000000000000000")
    assert chain.revert(accounts.provider, fn) == ("ZeroAddress", {})


def test_datatoken_initialize_only_by_the_factory_and_once(chain, dataset, accounts, clone_with_factory):
    fn = dataset.datatoken.functions.initialize(1, accounts.stranger.address)
    assert chain.revert(accounts.stranger, fn) == ("NotAuthorized", {"caller": accounts.stranger.address})
    impl = chain.contract("Datatoken", chain.deployment["contracts"]["Datatoken"])
    assert chain.revert(accounts.stranger, impl.functions.initialize(1, accounts.stranger.address)) == (
        "NotAuthorized",
        {"caller": accounts.stranger.address},
    )
    dt = clone_with_factory("Datatoken", accounts.stranger)
    chain.tx(accounts.stranger, dt.functions.initialize(5, accounts.provider.address))
    assert dt.functions.price().call() == 5
    assert dt.functions.paymentCollector().call() == accounts.provider.address
    assert chain.revert(accounts.stranger, dt.functions.initialize(1, accounts.stranger.address)) == (
        "AlreadyInitialized",
        {},
    )
