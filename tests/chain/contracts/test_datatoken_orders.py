"""Datatoken ordering: buy+order in one transaction (permit or allowance), the dispenser path,
the privacy budget caps, and what closes ordering."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3.exceptions import Web3RPCError

from tests.chain.conftest import ALGORITHM, DEFAULT_EPSILON_CAP, DEFAULT_PRICE, DELTA_1E5, USDC

pytestmark = pytest.mark.chain

ZERO = "0x0000000000000000000000000000000000000000"
ONE_DATATOKEN = 10**18


def test_buy_and_order_with_permit_is_one_transaction(chain, dataset, accounts):
    buyer, dt = accounts.buyer, dataset.datatoken
    assert chain.usdc.functions.allowance(buyer.address, dt.address).call() == 0
    nonce_before = chain.w3.eth.get_transaction_count(buyer.address)
    buyer_before = chain.balance(buyer.address)

    order_id, receipt = chain.buy(dataset, buyer, epsilon=400_000, delta=DELTA_1E5)

    assert chain.w3.eth.get_transaction_count(buyer.address) == nonce_before + 1  # no approve transaction
    assert order_id == 1
    started = chain.event(dt, "OrderStarted", receipt)
    assert started.consumer == buyer.address
    assert started.dataNft == dataset.nft.address
    assert (started.epsilon, started.delta) == (400_000, DELTA_1E5)
    assert started.algorithmHash == ALGORITHM
    assert started.amount == DEFAULT_PRICE
    # The price sits in escrow in the datatoken; the permit's allowance is used up.
    assert chain.balance(buyer.address) == buyer_before - DEFAULT_PRICE
    assert chain.balance(dt.address) == DEFAULT_PRICE
    assert chain.usdc.functions.allowance(buyer.address, dt.address).call() == 0
    # One datatoken minted to the consumer and burnt: nothing left in circulation.
    transfers = [(t.args["from"], t.args.to, t.args.value) for t in chain.events(dt, "Transfer", receipt)]
    assert transfers == [(ZERO, buyer.address, ONE_DATATOKEN), (buyer.address, ZERO, ONE_DATATOKEN)]
    assert dt.functions.balanceOf(buyer.address).call() == 0
    assert dt.functions.totalSupply().call() == 0

    assert dt.functions.orderStatus(order_id).call() == 1
    assert dt.functions.getOrder(order_id).call() == [buyer.address, 400_000, DEFAULT_PRICE, 1]
    assert dt.functions.orderCount().call() == 1
    assert dt.functions.epsilonOrdered().call() == 400_000
    assert dt.functions.epsilonLeft().call() == DEFAULT_EPSILON_CAP - 400_000


def test_buy_and_order_with_an_existing_allowance(chain, dataset, accounts):
    buyer, dt = accounts.buyer, dataset.datatoken
    chain.tx(buyer, chain.usdc.functions.approve(dt.address, DEFAULT_PRICE))
    order_id, receipt = chain.buy(dataset, buyer, permit=False)
    assert chain.event(dt, "OrderStarted", receipt).amount == DEFAULT_PRICE
    assert chain.balance(dt.address) == DEFAULT_PRICE
    assert dt.functions.orderStatus(order_id).call() == 1


def test_without_permit_or_allowance_the_token_refuses(chain, dataset, accounts):
    fn = chain.buy_fn(dataset, accounts.buyer, permit=False)
    assert chain.revert(accounts.buyer, fn) == (
        "ERC20InsufficientAllowance",
        {"spender": dataset.datatoken.address, "allowance": 0, "needed": DEFAULT_PRICE},
    )


def test_a_permit_signed_by_someone_else_does_not_pay(chain, dataset, accounts):
    dt = dataset.datatoken
    deadline, v, r, s = chain.sign_permit(accounts.stranger, dt.address, DEFAULT_PRICE)
    fn = dt.functions.buyAndOrder(500_000, 0, ALGORITHM, DEFAULT_PRICE, deadline, v, r, s)
    name, _ = chain.revert(accounts.buyer, fn)
    assert name == "ERC20InsufficientAllowance"


def test_an_expired_permit_does_not_pay(chain, dataset, accounts):
    dt = dataset.datatoken
    deadline, v, r, s = chain.sign_permit(accounts.buyer, dt.address, DEFAULT_PRICE, deadline=chain.timestamp() - 1)
    fn = dt.functions.buyAndOrder(500_000, 0, ALGORITHM, DEFAULT_PRICE, deadline, v, r, s)
    name, _ = chain.revert(accounts.buyer, fn)
    assert name == "ERC20InsufficientAllowance"


def test_a_front_run_permit_does_not_block_the_order(chain, dataset, accounts):
    """Someone submits the buyer's permit first: the order still goes through on the allowance."""
    buyer, dt = accounts.buyer, dataset.datatoken
    deadline, v, r, s = chain.sign_permit(buyer, dt.address, DEFAULT_PRICE)
    chain.tx(
        accounts.stranger, chain.usdc.functions.permit(buyer.address, dt.address, DEFAULT_PRICE, deadline, v, r, s)
    )
    receipt = chain.tx(buyer, dt.functions.buyAndOrder(500_000, 0, ALGORITHM, DEFAULT_PRICE, deadline, v, r, s))
    assert chain.event(dt, "OrderStarted", receipt).amount == DEFAULT_PRICE


def test_replayed_permit_cannot_pay_a_second_order(chain, dataset, accounts):
    buyer, dt = accounts.buyer, dataset.datatoken
    deadline, v, r, s = chain.sign_permit(buyer, dt.address, DEFAULT_PRICE)
    fn = dt.functions.buyAndOrder(500_000, 0, ALGORITHM, DEFAULT_PRICE, deadline, v, r, s)
    chain.tx(buyer, fn)
    assert chain.revert(buyer, fn) == (
        "ERC20InsufficientAllowance",
        {"spender": dt.address, "allowance": 0, "needed": DEFAULT_PRICE},
    )


def test_every_order_gets_a_new_id(chain, dataset, accounts):
    first, _ = chain.buy(dataset, accounts.buyer)
    second, _ = chain.buy(dataset, accounts.buyer)
    third, _ = chain.buy(dataset, accounts.buyer2)
    assert (first, second, third) == (1, 2, 3)
    assert dataset.datatoken.functions.orderCount().call() == 3
    assert chain.balance(dataset.datatoken.address) == 3 * DEFAULT_PRICE


def test_a_signed_order_transaction_cannot_be_replayed(chain, dataset, accounts):
    buyer = accounts.buyer
    fn = chain.buy_fn(dataset, buyer)
    tx = fn.build_transaction({"from": buyer.address, "nonce": chain.w3.eth.get_transaction_count(buyer.address)})
    raw = buyer.sign_transaction(tx).raw_transaction
    chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(raw))
    with pytest.raises(Web3RPCError, match="nonce"):
        chain.w3.eth.send_raw_transaction(raw)
    assert dataset.datatoken.functions.orderCount().call() == 1


def test_price_above_max_is_refused(chain, dataset, accounts):
    fn = chain.buy_fn(dataset, accounts.buyer, max_price=DEFAULT_PRICE - 1)
    assert chain.revert(accounts.buyer, fn) == (
        "PriceAboveMax",
        {"price": DEFAULT_PRICE, "maxPrice": DEFAULT_PRICE - 1},
    )


def test_zero_epsilon_is_refused(chain, dataset, accounts):
    assert chain.revert(accounts.buyer, chain.buy_fn(dataset, accounts.buyer, epsilon=0)) == ("ZeroEpsilon", {})


def test_per_job_cap(chain, dataset, accounts):
    order_id, _ = chain.buy(dataset, accounts.buyer, epsilon=1_000_000)
    assert order_id == 1
    fn = chain.buy_fn(dataset, accounts.buyer, epsilon=1_000_001)
    assert chain.revert(accounts.buyer, fn) == ("EpsilonPerJobCapExceeded", {"requested": 1_000_001, "cap": 1_000_000})


def test_delta_cap(chain, dataset, accounts):
    chain.buy(dataset, accounts.buyer, delta=DELTA_1E5)
    chain.buy(dataset, accounts.buyer, delta=0)
    fn = chain.buy_fn(dataset, accounts.buyer, delta=DELTA_1E5 + 1)
    assert chain.revert(accounts.buyer, fn) == ("DeltaCapExceeded", {"requested": DELTA_1E5 + 1, "cap": DELTA_1E5})


def test_epsilon_cap_exactly_at_the_boundary(chain, accounts):
    """Cap 2.5: orders of 1 + 1 + 0.5 fill it exactly; one more micro-epsilon is refused."""
    ds = chain.publish(epsilonCap=2_500_000, epsilonPerJobCap=1_000_000)
    dt = ds.datatoken
    chain.buy(ds, accounts.buyer, epsilon=1_000_000)
    chain.buy(ds, accounts.buyer2, epsilon=1_000_000)
    fn = chain.buy_fn(ds, accounts.buyer, epsilon=500_001)
    assert chain.revert(accounts.buyer, fn) == ("EpsilonCapExceeded", {"requested": 500_001, "left": 500_000})
    chain.buy(ds, accounts.buyer, epsilon=500_000)
    assert dt.functions.epsilonOrdered().call() == 2_500_000
    assert dt.functions.epsilonLeft().call() == 0
    fn = chain.buy_fn(ds, accounts.buyer, epsilon=1)
    assert chain.revert(accounts.buyer, fn) == ("EpsilonCapExceeded", {"requested": 1, "left": 0})
    # A refused order moved no money.
    assert chain.balance(dt.address) == 3 * DEFAULT_PRICE


def test_operator_flag_closes_and_reopens_ordering(chain, dataset, accounts):
    dt = dataset.datatoken
    receipt = chain.tx(accounts.operator, dt.functions.setOperatorOrderingDisabled(True))
    assert chain.event(dt, "OperatorOrderingDisabled", receipt).disabled is True
    assert dt.functions.operatorOrderingDisabled().call() is True
    assert dt.functions.orderingOpen().call() is False
    assert chain.revert(accounts.buyer, chain.buy_fn(dataset, accounts.buyer)) == ("OrderingClosed", {})
    # The provider keeps the NFT and cannot lift the operator's flag by its own state.
    assert dataset.nft.functions.ownerOf(1).call() == accounts.provider.address
    chain.tx(accounts.provider, dataset.nft.functions.setState(0))
    assert dt.functions.orderingOpen().call() is False

    receipt = chain.tx(accounts.operator, dt.functions.setOperatorOrderingDisabled(False))
    assert chain.event(dt, "OperatorOrderingDisabled", receipt).disabled is False
    assert dt.functions.orderingOpen().call() is True
    chain.buy(dataset, accounts.buyer)


def test_only_the_operator_sets_its_flag(chain, dataset, accounts):
    for caller in (accounts.provider, accounts.deployer, accounts.stranger):
        fn = dataset.datatoken.functions.setOperatorOrderingDisabled(True)
        assert chain.revert(caller, fn) == ("NotOperator", {"caller": caller.address})


@pytest.mark.parametrize(("state", "open_"), [(1, False), (2, False), (3, True), (0, True)])
def test_nft_state_decides_ordering(chain, dataset, accounts, state, open_):
    chain.tx(accounts.provider, dataset.nft.functions.setState(state))
    assert dataset.datatoken.functions.orderingOpen().call() is open_
    fn = chain.buy_fn(dataset, accounts.buyer)
    if open_:
        chain.tx(accounts.buyer, fn)
    else:
        assert chain.revert(accounts.buyer, fn) == ("OrderingClosed", {})
        assert chain.revert(accounts.buyer, dataset.datatoken.functions.dispenseAndOrder(1, 0, ALGORITHM)) == (
            "OrderingClosed",
            {},
        )


def test_nft_state_back_to_active_reopens(chain, dataset, accounts):
    chain.tx(accounts.provider, dataset.nft.functions.setState(2))
    chain.tx(accounts.provider, dataset.nft.functions.setState(0))
    assert dataset.datatoken.functions.orderingOpen().call() is True
    chain.buy(dataset, accounts.buyer)


def test_only_the_nft_syncs_its_state(chain, dataset, accounts):
    fn = dataset.datatoken.functions.syncNftState(1)
    assert chain.revert(accounts.provider, fn) == ("NotAuthorized", {"caller": accounts.provider.address})


def test_free_dataset_dispenser(chain, accounts):
    ds = chain.publish(price=0)
    dt = ds.datatoken
    before = chain.balance(accounts.buyer.address)
    algorithm = keccak(text="count(*)")
    receipt = chain.tx(accounts.buyer, dt.functions.dispenseAndOrder(700_000, 5, algorithm))
    started = chain.event(dt, "OrderStarted", receipt)
    assert (started.orderId, started.consumer, started.dataNft) == (1, accounts.buyer.address, ds.nft.address)
    assert (started.epsilon, started.delta, started.algorithmHash, started.amount) == (700_000, 5, algorithm, 0)
    assert len(chain.events(dt, "Transfer", receipt)) == 2
    assert chain.balance(accounts.buyer.address) == before
    assert dt.functions.epsilonOrdered().call() == 700_000
    assert dt.functions.getOrder(1).call() == [accounts.buyer.address, 700_000, 0, 1]
    # The same caps hold on the dispenser path.
    assert chain.revert(accounts.buyer, dt.functions.dispenseAndOrder(1_000_001, 0, algorithm)) == (
        "EpsilonPerJobCapExceeded",
        {"requested": 1_000_001, "cap": 1_000_000},
    )
    assert chain.revert(accounts.buyer, dt.functions.dispenseAndOrder(0, 0, algorithm)) == ("ZeroEpsilon", {})


def test_free_dataset_can_also_be_ordered_through_buy_and_order(chain, accounts):
    ds = chain.publish(price=0)
    order_id, receipt = chain.buy(ds, accounts.buyer, permit=False)
    assert chain.event(ds.datatoken, "OrderStarted", receipt).amount == 0


def test_dispenser_refuses_a_priced_dataset(chain, dataset, accounts):
    fn = dataset.datatoken.functions.dispenseAndOrder(500_000, 0, ALGORITHM)
    assert chain.revert(accounts.buyer, fn) == ("NotFree", {})


def test_insufficient_balance_is_refused_by_the_token(chain, dataset, accounts):
    poor = accounts.manager  # never funded
    fn = chain.buy_fn(dataset, poor)
    assert chain.revert(poor, fn) == (
        "ERC20InsufficientBalance",
        {"sender": poor.address, "balance": 0, "needed": DEFAULT_PRICE},
    )


def test_unknown_order_status_is_none(chain, dataset):
    assert dataset.datatoken.functions.orderStatus(42).call() == 0
    assert dataset.datatoken.functions.getOrder(42).call() == [ZERO, 0, 0, 0]


def test_usdc_faucet_funded_buyers(chain, accounts):
    # The session funds the buyers once; every test starts with the same balance.
    assert chain.balance(accounts.buyer.address) == 1_000 * USDC


def test_a_refused_order_reverts_on_chain_and_moves_nothing(chain, accounts):
    """Not only in simulation: the mined transaction fails and leaves budget and balances alone."""
    ds = chain.publish(epsilonCap=1_000_000, epsilonPerJobCap=1_000_000)
    chain.buy(ds, accounts.buyer, epsilon=1_000_000)
    buyer = accounts.buyer2
    before = chain.balance(buyer.address)
    fn = chain.buy_fn(ds, buyer, epsilon=1)
    tx = fn.build_transaction(
        {"from": buyer.address, "nonce": chain.w3.eth.get_transaction_count(buyer.address), "gas": 300_000}
    )
    tx_hash = chain.w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction)
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    assert chain.balance(buyer.address) == before
    assert ds.datatoken.functions.epsilonOrdered().call() == 1_000_000
    assert ds.datatoken.functions.orderCount().call() == 1
