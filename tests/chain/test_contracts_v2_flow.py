"""Contracts v2 through the marketplace on anvil: every order needs the operator's ticket, an order
past its deadline is reclaimed by its buyer, a datatoken is closed until its dataset is listed, and
settlements credit accounts whose withdrawals follow."""

from __future__ import annotations

from decimal import Decimal

import pytest
from web3.exceptions import ContractCustomError

from chain.models import ChainListing, ChainTransaction, Order, OrderTicket, Wallet
from chain.revert import decode_revert, revert_message
from chain.services import orders as order_services
from chain.wrappers import Datatoken
from tests.chain.conftest import ORDER_WINDOW
from tests.chain.test_marketplace_flow import USDC, _login, _publish, _token
from tests.conftest import client_for

pytestmark = [pytest.mark.chain, pytest.mark.django_db(transaction=True)]


def _order(api, buyer, dataset) -> Order:
    _login(api, buyer)
    request = {"dataset": dataset.pk, "epsilon": "0.5", "delta": 1e-6, "algorithm": "dp-statistics"}
    response = api.post("/api/v1/orders/", request, format="json")
    assert response.status_code == 202, response.content
    return Order.objects.get(pk=response.json()["id"])


def test_the_job_api_orders_with_a_ticket_whose_nonce_is_the_order_id(api, people, on_chain):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    order = _order(api, buyer, dataset)
    assert order.status == Order.Status.CONFIRMED, order.error
    ticket = OrderTicket.objects.get(listing=order.listing, nonce=order.chain_order_id)
    assert ticket.buyer == buyer and ticket.buyer_address == order.consumer_address
    assert (ticket.epsilon_units, ticket.algorithm_hash) == (500_000, order.algorithm_hash)
    assert 0 < order.chain_order_id < 2**53
    assert order.ticket_expires_at == ticket.expires_at
    assert order.deadline == on_chain.w3.eth.get_block(order.block_number)["timestamp"] + ORDER_WINDOW


@pytest.mark.parametrize("flaw", ["forged", "expired", "reused"])
def test_an_order_without_a_valid_ticket_is_refused_and_says_why(chain, dataset, accounts, flaw):
    buyer = accounts.buyer
    if flaw == "reused":
        ticket, signature = chain.ticket(dataset, buyer, nonce=77)
        chain.tx(buyer, chain.buy_fn(dataset, buyer, nonce=77))
        expected, sentence = "TicketUsed", "already used"
    elif flaw == "forged":
        ticket, signature = chain.ticket(dataset, buyer, signer=accounts.stranger)
        expected, sentence = "TicketInvalid", "not signed by the marketplace's operator"
    else:
        ticket, signature = chain.ticket(dataset, buyer, expiry=chain.timestamp() - 1)
        expected, sentence = "TicketExpired", "expired"
    deadline, v, r, s = chain.sign_permit(buyer, dataset.datatoken.address, ticket.price)
    call = dataset.datatoken.functions.buyAndOrder(ticket.as_tuple(), signature, deadline, v, r, s)
    with pytest.raises(ContractCustomError) as excinfo:
        call.call({"from": buyer.address})
    assert decode_revert(excinfo.value.data)[0] == expected
    assert sentence in revert_message(excinfo.value)


def test_a_ticket_is_for_one_buyer(chain, dataset, accounts):
    ticket, signature = chain.ticket(dataset, accounts.buyer)
    deadline, v, r, s = chain.sign_permit(accounts.buyer2, dataset.datatoken.address, ticket.price)
    with pytest.raises(ContractCustomError) as excinfo:
        dataset.datatoken.functions.buyAndOrder(ticket.as_tuple(), signature, deadline, v, r, s).call(
            {"from": accounts.buyer2.address}
        )
    assert decode_revert(excinfo.value.data)[0] == "TicketInvalid"


def test_own_wallet_prepare_hands_out_the_ticket_inside_the_transaction(api, people, on_chain):
    """An own wallet gets the operator's ticket from the prepare step, inside the order transaction."""
    from eth_account import Account

    from chain.faucet import fund_address
    from tests.chain.test_marketplace_flow import _siwe_link

    provider, buyer, staff = people
    dataset = _publish(api, provider, staff, price="0")
    own = Account.create()
    fund_address(on_chain.w3, on_chain.deployment, own.address)
    _siwe_link(api, buyer, own)
    request = {
        "dataset": dataset.pk,
        "epsilon": "0.5",
        "delta": 1e-6,
        "algorithm": "dp-statistics",
        "wallet": own.address,
    }
    prepared = _login(api, buyer).post("/api/v1/orders/prepare/", request, format="json")
    assert prepared.status_code == 200, prepared.content
    body = prepared.json()
    assert body["step"] == "send_transaction" and body["ticket"]["signature"].startswith("0x")
    ticket = OrderTicket.objects.get(buyer=buyer)
    assert int(body["ticket"]["nonce"]) == ticket.nonce and ticket.buyer_address == own.address
    assert body["ticket"]["signature"][2:] in body["transaction"]["data"]


def test_a_datatoken_is_closed_from_publish_until_listed(api, people, on_chain):
    provider, buyer, staff = people
    from marketplace.models import Dataset
    from marketplace.services.moderation import dataset_transition

    dataset = _publish(api, provider, staff, status=Dataset.Status.PENDING_REVIEW)
    listing = ChainListing.objects.get(dataset=dataset)
    datatoken = Datatoken(on_chain.w3, listing.datatoken_address)
    assert datatoken.operator_ordering_disabled() is True and listing.operator_ordering_disabled is True
    # Closed from the start: no operator transaction was needed to close it.
    assert not ChainTransaction.objects.filter(purpose="ordering_flag", dataset=dataset).exists()
    dataset_transition(dataset=Dataset.objects.get(pk=dataset.pk), actor=staff, action="approve", reason="fine")
    assert datatoken.ordering_open() is True
    assert ChainListing.objects.get(pk=listing.pk).operator_ordering_disabled is False


def test_an_expired_order_cannot_be_settled_and_its_buyer_reclaims_it(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    token = _token(on_chain, deployment)
    wallet = Wallet.objects.get(user=buyer, kind="managed").address
    before = token.balance_of(wallet)
    order = _order(api, buyer, dataset)
    assert order.status == Order.Status.CONFIRMED, order.error
    datatoken = Datatoken(on_chain.w3, order.listing.datatoken_address)
    assert token.balance_of(wallet) == before - 5 * USDC and datatoken.epsilon_ordered() == 500_000

    early = api.post(f"/api/v1/orders/{order.pk}/reclaim/")
    assert early.status_code == 409 and early.json()["code"] == "order_not_expired"

    on_chain.increase_time(ORDER_WINDOW + 1)
    # Past its deadline, still only its buyer may reclaim it through the marketplace (the dataset's
    # provider sees the order, but cannot have it sent or get its call).
    stranger = client_for(provider).post(f"/api/v1/orders/{order.pk}/reclaim/")
    assert stranger.status_code in (403, 404), stranger.content
    assert not ChainTransaction.objects.filter(order=order, purpose="reclaim").exists()
    with pytest.raises(order_services.OrderExpired):
        order_services.order_refund(order=order)
    order.refresh_from_db()
    assert "passed its deadline" in order.error
    assert not ChainTransaction.objects.filter(purpose__in=["receipt", "refund"]).exists()

    # The order page offers the reclaim; its form sends it from the managed wallet.
    from django.test import Client

    page = Client()
    page.force_login(buyer)
    body = page.get(f"/orders/{order.pk}/").content.decode()
    assert "passed its deadline unsettled" in body and "Reclaim the payment" in body
    assert page.post(f"/orders/{order.pk}/reclaim/").status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.RECLAIMED
    reclaim = ChainTransaction.objects.get(purpose="reclaim", order=order)
    assert reclaim.sender == wallet and reclaim.status == "mined"
    # The buyer's credit was withdrawn for them: the payment is back, the epsilon released.
    withdraw = ChainTransaction.objects.get(purpose="withdraw", context__account=wallet)
    assert withdraw.status == "mined"
    assert token.balance_of(wallet) == before
    assert datatoken.epsilon_ordered() == 0 and datatoken.held() == 0
    assert ChainListing.objects.get(pk=order.listing_id).epsilon_ordered_units == 0
    body = page.get(f"/orders/{order.pk}/").content.decode()
    assert "was reclaimed" in body and "Paid out" in body and wallet in body


def test_an_own_wallet_gets_the_reclaim_call_to_send(api, people, on_chain):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    order = _order(api, buyer, dataset)
    on_chain.increase_time(ORDER_WINDOW + 1)
    Wallet.objects.filter(address=order.consumer_address).update(kind=Wallet.Kind.EXTERNAL)
    answer = api.post(f"/api/v1/orders/{order.pk}/reclaim/")
    assert answer.status_code == 202, answer.content
    call = answer.json()["transaction"]
    assert call["to"] == order.listing.datatoken_address and call["order_id"] == str(order.chain_order_id)
    assert call["order"]["consumer"] == order.consumer_address and call["order"]["amount"] == str(5 * USDC)
    # Anyone may send it (here a stranger): the chain credits the buyer.
    from chain.deploy import send_signed

    send_signed(on_chain.w3, on_chain.accounts.stranger, {"to": call["to"], "data": call["data"]})
    datatoken = Datatoken(on_chain.w3, order.listing.datatoken_address)
    assert datatoken.credits(order.consumer_address) == 5 * USDC
    assert datatoken.order_status(order.chain_order_id) == "reclaimed"


def test_a_refund_credits_the_buyer_and_the_withdrawal_pays_it(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    token = _token(on_chain, deployment)
    wallet = Wallet.objects.get(user=buyer, kind="managed").address
    before = token.balance_of(wallet)
    order = _order(api, buyer, dataset)
    order_services.order_refund(order=order)
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert ChainTransaction.objects.get(purpose="withdraw", context__account=wallet).status == "mined"
    assert token.balance_of(wallet) == before
    assert Datatoken(on_chain.w3, order.listing.datatoken_address).credits(wallet) == 0
    assert order.epsilon_spent is None or order.epsilon_spent == Decimal("0")
