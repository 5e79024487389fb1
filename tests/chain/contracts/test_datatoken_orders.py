"""Datatoken ordering: buy+order in one transaction (permit or allowance) with the operator's
order ticket, the dispenser path, the privacy budget caps, and what closes ordering."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3.exceptions import Web3RPCError

from tests.chain.conftest import ALGORITHM, DEFAULT_EPSILON_CAP, DEFAULT_PRICE, DELTA_1E5, USDC

pytestmark = pytest.mark.chain

ZERO = "0x0000000000000000000000000000000000000000"


def _buy(chain, dataset, buyer, permit, **ticket):
    """buyAndOrder with a fresh operator ticket (``ticket`` overrides its fields) and the given permit."""
    signed, signature = chain.ticket(dataset, buyer, **{"epsilon": 500_000, "delta": 0, **ticket})
    return dataset.datatoken.functions.buyAndOrder(signed.as_tuple(), signature, *permit)


def _dispense(chain, dataset, buyer, **ticket):
    signed, signature = chain.ticket(dataset, buyer, **{"price": 0, **ticket})
    return dataset.datatoken.functions.dispenseAndOrder(signed.as_tuple(), signature)


def test_buy_and_order_with_permit_is_one_transaction(chain, dataset, accounts):
    buyer, dt = accounts.buyer, dataset.datatoken
    assert chain.usdc.functions.allowance(buyer.address, dt.address).call() == 0
    nonce_before = chain.w3.eth.get_transaction_count(buyer.address)
    buyer_before = chain.balance(buyer.address)

    order_id, receipt = chain.buy(dataset, buyer, epsilon=400_000, delta=DELTA_1E5, nonce=1)

    assert chain.w3.eth.get_transaction_count(buyer.address) == nonce_before + 1  # no approve transaction
    assert order_id == 1  # the ticket's nonce
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
    # No datatoken is minted or burnt (v2: no event-only Transfer anyone could fake).
    assert chain.events(dt, "Transfer", receipt) == []
    assert dt.functions.balanceOf(buyer.address).call() == 0
    assert dt.functions.totalSupply().call() == 0

    assert dt.functions.orderStatus(order_id).call() == 1
    terms = chain.terms(started)
    assert terms == (buyer.address, 400_000, DELTA_1E5, DEFAULT_PRICE, chain.timestamp() + 7 * 24 * 3600)
    assert dt.functions.getOrder(order_id).call() == [1, dt.functions.orderCommitment(terms).call()]
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
    permit = chain.sign_permit(accounts.stranger, dt.address, DEFAULT_PRICE)
    fn = _buy(chain, dataset, accounts.buyer, permit)
    name, _ = chain.revert(accounts.buyer, fn)
    assert name == "ERC20InsufficientAllowance"


def test_an_expired_permit_does_not_pay(chain, dataset, accounts):
    dt = dataset.datatoken
    permit = chain.sign_permit(accounts.buyer, dt.address, DEFAULT_PRICE, deadline=chain.timestamp() - 1)
    fn = _buy(chain, dataset, accounts.buyer, permit)
    name, _ = chain.revert(accounts.buyer, fn)
    assert name == "ERC20InsufficientAllowance"


def test_a_front_run_permit_does_not_block_the_order(chain, dataset, accounts):
    """Someone submits the buyer's permit first: the order still goes through on the allowance."""
    buyer, dt = accounts.buyer, dataset.datatoken
    deadline, v, r, s = chain.sign_permit(buyer, dt.address, DEFAULT_PRICE)
    chain.tx(
        accounts.stranger, chain.usdc.functions.permit(buyer.address, dt.address, DEFAULT_PRICE, deadline, v, r, s)
    )
    receipt = chain.tx(buyer, _buy(chain, dataset, buyer, (deadline, v, r, s)))
    assert chain.event(dt, "OrderStarted", receipt).amount == DEFAULT_PRICE


def test_replayed_permit_cannot_pay_a_second_order(chain, dataset, accounts):
    buyer, dt = accounts.buyer, dataset.datatoken
    permit = chain.sign_permit(buyer, dt.address, DEFAULT_PRICE)
    chain.tx(buyer, _buy(chain, dataset, buyer, permit))
    # A new ticket, the same permit: the permit is spent, so the allowance is 0.
    assert chain.revert(buyer, _buy(chain, dataset, buyer, permit)) == (
        "ERC20InsufficientAllowance",
        {"spender": dt.address, "allowance": 0, "needed": DEFAULT_PRICE},
    )


def test_every_order_gets_its_tickets_nonce_as_id_once(chain, dataset, accounts):
    first, _ = chain.buy(dataset, accounts.buyer, nonce=11)
    second, _ = chain.buy(dataset, accounts.buyer, nonce=7)
    third, _ = chain.buy(dataset, accounts.buyer2, nonce=2**53 - 1)
    assert (first, second, third) == (11, 7, 2**53 - 1)
    assert chain.balance(dataset.datatoken.address) == 3 * DEFAULT_PRICE == dataset.datatoken.functions.held().call()
    # A nonce is used once, whoever the ticket is for.
    fn = chain.buy_fn(dataset, accounts.buyer2, nonce=11)
    assert chain.revert(accounts.buyer2, fn) == ("TicketUsed", {"nonce": 11})


def test_a_signed_order_transaction_cannot_be_replayed(chain, dataset, accounts):
    buyer = accounts.buyer
    fn = chain.buy_fn(dataset, buyer, nonce=5)
    tx = fn.build_transaction({"from": buyer.address, "nonce": chain.w3.eth.get_transaction_count(buyer.address)})
    raw = buyer.sign_transaction(tx).raw_transaction
    chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(raw))
    with pytest.raises(Web3RPCError, match="nonce"):
        chain.w3.eth.send_raw_transaction(raw)
    assert dataset.datatoken.functions.orderStatus(5).call() == 1
    assert chain.balance(dataset.datatoken.address) == DEFAULT_PRICE


def test_a_price_other_than_the_tickets_is_refused(chain, dataset, accounts):
    for ticket_price in (DEFAULT_PRICE - 1, DEFAULT_PRICE + 1):
        fn = chain.buy_fn(dataset, accounts.buyer, price=ticket_price)
        assert chain.revert(accounts.buyer, fn) == (
            "PriceMismatch",
            {"price": DEFAULT_PRICE, "ticketPrice": ticket_price},
        )


def test_zero_epsilon_is_refused(chain, dataset, accounts):
    assert chain.revert(accounts.buyer, chain.buy_fn(dataset, accounts.buyer, epsilon=0)) == ("ZeroEpsilon", {})


def test_per_job_cap(chain, dataset, accounts):
    order_id, _ = chain.buy(dataset, accounts.buyer, epsilon=1_000_000)
    assert dataset.datatoken.functions.orderStatus(order_id).call() == 1
    fn = chain.buy_fn(dataset, accounts.buyer, epsilon=1_000_001)
    assert chain.revert(accounts.buyer, fn) == ("EpsilonPerJobCapExceeded", {"requested": 1_000_001, "cap": 1_000_000})


def test_delta_per_job_cap(chain, dataset, accounts):
    chain.buy(dataset, accounts.buyer, delta=DELTA_1E5)
    chain.buy(dataset, accounts.buyer, delta=0)
    fn = chain.buy_fn(dataset, accounts.buyer, delta=DELTA_1E5 + 1)
    assert chain.revert(accounts.buyer, fn) == (
        "DeltaPerJobCapExceeded",
        {"requested": DELTA_1E5 + 1, "cap": DELTA_1E5},
    )


def test_delta_is_budgeted_cumulatively(chain, accounts):
    """Contracts v2: the total delta cap holds across orders, as epsilon's does."""
    ds = chain.publish(deltaCap=2 * DELTA_1E5 + 1, deltaPerJobCap=DELTA_1E5)
    chain.buy(ds, accounts.buyer, delta=DELTA_1E5)
    chain.buy(ds, accounts.buyer2, delta=DELTA_1E5)
    assert ds.datatoken.functions.deltaOrdered().call() == 2 * DELTA_1E5
    assert ds.datatoken.functions.deltaLeft().call() == 1
    fn = chain.buy_fn(ds, accounts.buyer, delta=2)
    assert chain.revert(accounts.buyer, fn) == ("DeltaCapExceeded", {"requested": 2, "left": 1})
    chain.buy(ds, accounts.buyer, delta=1)
    assert ds.datatoken.functions.deltaLeft().call() == 0


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
        # The dispenser path too (on a free dataset: a priced one's dispense is NotFree first).
        free = chain.publish(price=0)
        chain.tx(accounts.provider, free.nft.functions.setState(state))
        assert chain.revert(accounts.buyer, _dispense(chain, free, accounts.buyer, epsilon=1, delta=0)) == (
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
    receipt = chain.tx(
        accounts.buyer, _dispense(chain, ds, accounts.buyer, epsilon=700_000, delta=5, algorithm=algorithm, nonce=1)
    )
    started = chain.event(dt, "OrderStarted", receipt)
    assert (started.orderId, started.consumer, started.dataNft) == (1, accounts.buyer.address, ds.nft.address)
    assert (started.epsilon, started.delta, started.algorithmHash, started.amount) == (700_000, 5, algorithm, 0)
    assert chain.events(dt, "Transfer", receipt) == []
    assert chain.balance(accounts.buyer.address) == before
    assert dt.functions.epsilonOrdered().call() == 700_000
    assert dt.functions.getOrder(1).call() == [1, dt.functions.orderCommitment(chain.terms(started)).call()]
    # The same caps hold on the dispenser path.
    fn = _dispense(chain, ds, accounts.buyer, epsilon=1_000_001, delta=0, algorithm=algorithm)
    assert chain.revert(accounts.buyer, fn) == ("EpsilonPerJobCapExceeded", {"requested": 1_000_001, "cap": 1_000_000})
    fn = _dispense(chain, ds, accounts.buyer, epsilon=0, delta=0, algorithm=algorithm)
    assert chain.revert(accounts.buyer, fn) == ("ZeroEpsilon", {})


def test_free_dataset_can_also_be_ordered_through_buy_and_order(chain, accounts):
    ds = chain.publish(price=0)
    order_id, receipt = chain.buy(ds, accounts.buyer, permit=False)
    assert chain.event(ds.datatoken, "OrderStarted", receipt).amount == 0


def test_dispenser_refuses_a_priced_dataset(chain, dataset, accounts):
    fn = _dispense(chain, dataset, accounts.buyer, epsilon=500_000, delta=0, price=DEFAULT_PRICE)
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
    assert dataset.datatoken.functions.getOrder(42).call() == [0, b"\0" * 32]


def test_usdc_faucet_funded_buyers(chain, accounts):
    # The session funds the buyers once; every test starts with the same balance.
    assert chain.balance(accounts.buyer.address) == 1_000 * USDC


def test_a_refused_order_reverts_on_chain_and_moves_nothing(chain, accounts):
    """Not only in simulation: the mined transaction fails and leaves budget and balances alone."""
    ds = chain.publish(epsilonCap=1_000_000, epsilonPerJobCap=1_000_000)
    chain.buy(ds, accounts.buyer, epsilon=1_000_000)
    buyer = accounts.buyer2
    before = chain.balance(buyer.address)
    fn = chain.buy_fn(ds, buyer, epsilon=1, nonce=99)
    tx = fn.build_transaction(
        {"from": buyer.address, "nonce": chain.w3.eth.get_transaction_count(buyer.address), "gas": 300_000}
    )
    tx_hash = chain.w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction)
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    assert chain.balance(buyer.address) == before
    assert ds.datatoken.functions.epsilonOrdered().call() == 1_000_000
    assert ds.datatoken.functions.orderStatus(99).call() == 0  # the ticket was not used either
