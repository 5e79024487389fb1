"""Datatoken escrow: receipts pay provider and marketplace, refunds pay the buyer back; both release
budget, and an order is settled once. Plus the price and payment collector settings."""

from __future__ import annotations

import pytest

from tests.chain.conftest import DEFAULT_PRICE, FEE_BPS
from tests.chain.contracts.support import HASHES, receipt_fn

pytestmark = pytest.mark.chain

FEE = DEFAULT_PRICE * FEE_BPS // 10_000


def test_receipt_pays_provider_and_fee_collector_and_releases_unused_epsilon(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, _ = chain.buy(dataset, accounts.buyer, epsilon=800_000)
    provider_before = chain.balance(accounts.provider.address)
    fee_before = chain.balance(accounts.fee_collector.address)

    receipt = chain.tx(accounts.operator, receipt_fn(dt, order_id, 300_000))

    recorded = chain.event(dt, "ReceiptRecorded", receipt)
    assert recorded.orderId == order_id
    assert {k: recorded[k] for k in HASHES} == HASHES
    assert recorded.epsilonSpent == 300_000
    assert (recorded.providerAmount, recorded.feeAmount) == (DEFAULT_PRICE - FEE, FEE)
    assert chain.balance(accounts.provider.address) == provider_before + DEFAULT_PRICE - FEE
    assert chain.balance(accounts.fee_collector.address) == fee_before + FEE
    assert chain.balance(dt.address) == 0
    assert dt.functions.orderStatus(order_id).call() == 2
    assert dt.functions.epsilonOrdered().call() == 300_000  # 0.5 of the 0.8 ordered went back


def test_receipt_spending_everything_releases_nothing(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, _ = chain.buy(dataset, accounts.buyer, epsilon=800_000)
    chain.tx(accounts.operator, receipt_fn(dt, order_id, 800_000))
    assert dt.functions.epsilonOrdered().call() == 800_000


def test_receipt_cannot_spend_more_than_ordered(chain, dataset, accounts):
    order_id, _ = chain.buy(dataset, accounts.buyer, epsilon=800_000)
    fn = receipt_fn(dataset.datatoken, order_id, 800_001)
    assert chain.revert(accounts.operator, fn) == ("EpsilonSpentAboveOrdered", {"spent": 800_001, "ordered": 800_000})


def test_order_is_settled_once(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, _ = chain.buy(dataset, accounts.buyer)
    chain.tx(accounts.operator, receipt_fn(dt, order_id, 100_000))
    assert chain.revert(accounts.operator, receipt_fn(dt, order_id, 100_000)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 2},
    )
    assert chain.revert(accounts.operator, dt.functions.refund(order_id)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 2},
    )
    assert chain.balance(dt.address) == 0


def test_unknown_order_cannot_be_settled(chain, dataset, accounts):
    dt = dataset.datatoken
    assert chain.revert(accounts.operator, receipt_fn(dt, 7, 0)) == ("OrderNotOpen", {"orderId": 7, "status": 0})
    assert chain.revert(accounts.operator, dt.functions.refund(7)) == ("OrderNotOpen", {"orderId": 7, "status": 0})


def test_refund_returns_payment_and_releases_epsilon(chain, dataset, accounts):
    dt = dataset.datatoken
    buyer_before = chain.balance(accounts.buyer.address)
    order_id, _ = chain.buy(dataset, accounts.buyer, epsilon=900_000)
    other_id, _ = chain.buy(dataset, accounts.buyer2, epsilon=400_000)
    assert dt.functions.epsilonOrdered().call() == 1_300_000

    receipt = chain.tx(accounts.operator, dt.functions.refund(order_id))

    refunded = chain.event(dt, "OrderRefunded", receipt)
    assert (refunded.orderId, refunded.consumer, refunded.amount, refunded.epsilonReleased) == (
        order_id,
        accounts.buyer.address,
        DEFAULT_PRICE,
        900_000,
    )
    assert chain.balance(accounts.buyer.address) == buyer_before
    assert chain.balance(dt.address) == DEFAULT_PRICE  # the other order stays in escrow
    assert dt.functions.orderStatus(order_id).call() == 3
    assert dt.functions.orderStatus(other_id).call() == 1
    assert dt.functions.epsilonOrdered().call() == 400_000
    assert chain.revert(accounts.operator, dt.functions.refund(order_id)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 3},
    )
    assert chain.revert(accounts.operator, receipt_fn(dt, order_id, 0)) == (
        "OrderNotOpen",
        {"orderId": order_id, "status": 3},
    )


def test_released_budget_can_be_ordered_again(chain, accounts):
    ds = chain.publish(epsilonCap=1_000_000, epsilonPerJobCap=1_000_000)
    order_id, _ = chain.buy(ds, accounts.buyer, epsilon=1_000_000)
    assert chain.revert(accounts.buyer2, chain.buy_fn(ds, accounts.buyer2, epsilon=1))[0] == "EpsilonCapExceeded"
    chain.tx(accounts.operator, ds.datatoken.functions.refund(order_id))
    chain.buy(ds, accounts.buyer2, epsilon=1_000_000)


def test_free_order_receipt_and_refund_move_no_money(chain, accounts):
    ds = chain.publish(price=0)
    dt = ds.datatoken
    chain.tx(accounts.buyer, dt.functions.dispenseAndOrder(500_000, 0, HASHES["algorithmHash"]))
    chain.tx(accounts.buyer, dt.functions.dispenseAndOrder(500_000, 0, HASHES["algorithmHash"]))
    receipt = chain.tx(accounts.operator, receipt_fn(dt, 1, 200_000))
    recorded = chain.event(dt, "ReceiptRecorded", receipt)
    assert (recorded.providerAmount, recorded.feeAmount) == (0, 0)
    receipt = chain.tx(accounts.operator, dt.functions.refund(2))
    assert chain.event(dt, "OrderRefunded", receipt).amount == 0
    assert dt.functions.epsilonOrdered().call() == 200_000


def test_settlement_is_operator_only(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, _ = chain.buy(dataset, accounts.buyer)
    for caller in (accounts.provider, accounts.buyer, accounts.deployer, accounts.stranger):
        assert chain.revert(caller, receipt_fn(dt, order_id, 0)) == ("NotOperator", {"caller": caller.address})
        assert chain.revert(caller, dt.functions.refund(order_id)) == ("NotOperator", {"caller": caller.address})


def test_a_new_factory_operator_takes_over(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, _ = chain.buy(dataset, accounts.buyer)
    chain.tx(accounts.deployer, chain.factory.functions.setOperator(accounts.stranger.address))
    assert chain.revert(accounts.operator, dt.functions.refund(order_id)) == (
        "NotOperator",
        {"caller": accounts.operator.address},
    )
    chain.tx(accounts.stranger, dt.functions.refund(order_id))


def test_open_orders_keep_the_price_they_paid(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, _ = chain.buy(dataset, accounts.buyer)
    receipt = chain.tx(accounts.provider, dt.functions.setPrice(20 * 10**6))
    changed = chain.event(dt, "PriceChanged", receipt)
    assert (changed.oldPrice, changed.newPrice) == (DEFAULT_PRICE, 20 * 10**6)
    assert dt.functions.price().call() == 20 * 10**6
    assert dt.functions.getOrder(order_id).call()[2] == DEFAULT_PRICE
    new_id, receipt = chain.buy(dataset, accounts.buyer2)
    assert chain.event(dt, "OrderStarted", receipt).amount == 20 * 10**6

    buyer_before = chain.balance(accounts.buyer.address)
    chain.tx(accounts.operator, dt.functions.refund(order_id))
    assert chain.balance(accounts.buyer.address) == buyer_before + DEFAULT_PRICE
    receipt = chain.tx(accounts.operator, receipt_fn(dt, new_id, 0))
    recorded = chain.event(dt, "ReceiptRecorded", receipt)
    assert recorded.providerAmount + recorded.feeAmount == 20 * 10**6
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
    chain.tx(accounts.buyer, dt.functions.dispenseAndOrder(100_000, 0, HASHES["algorithmHash"]))
    chain.tx(accounts.provider, dt.functions.setPrice(1))
    assert chain.revert(accounts.buyer, dt.functions.dispenseAndOrder(100_000, 0, HASHES["algorithmHash"])) == (
        "NotFree",
        {},
    )


def test_payment_collector_is_set_by_the_nft_owner(chain, dataset, accounts):
    dt = dataset.datatoken
    order_id, _ = chain.buy(dataset, accounts.buyer)
    receipt = chain.tx(accounts.provider, dt.functions.setPaymentCollector(accounts.updater.address))
    changed = chain.event(dt, "PaymentCollectorChanged", receipt)
    assert (changed.oldCollector, changed.newCollector) == (accounts.provider.address, accounts.updater.address)
    before = chain.balance(accounts.updater.address)
    chain.tx(accounts.operator, receipt_fn(dt, order_id, 0))
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
