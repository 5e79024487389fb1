"""The chain in the server-rendered pages, on a real anvil: publishing from the dataset page, the
buy form (quote, then pay and order in one transaction), the order pages and the wallet section."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from eth_account import Account

from chain import client
from chain.models import ChainListing, ChainTransaction, Order, Wallet
from chain.services.orders import RELEASE_TEXT
from marketplace.models import Dataset
from tests.factories import UserFactory, make_dataset

pytestmark = [pytest.mark.chain, pytest.mark.django_db(transaction=True)]

ORDER = {"epsilon": "0.5", "delta": "0.000001", "algorithm": "dp-logistic-regression"}


def client_as(user) -> Client:
    page = Client()
    if user is not None:
        page.force_login(user)
    return page


def text(response) -> str:
    return response.content.decode()


def publish_from_page(provider, staff) -> Dataset:
    dataset = make_dataset(owner=provider, price="5", status=Dataset.Status.LISTED, moderator=staff)
    page = client_as(provider)
    before = text(page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Not published" in before and "Publish on chain" in before
    response = page.post(reverse("frontend:dataset-publish", args=[dataset.pk]), follow=True)
    assert response.status_code == 200
    assert "Published on chain" in text(response), text(response)
    return dataset


def order_url(dataset: Dataset) -> str:
    return reverse("frontend:dataset-order", args=[dataset.pk])


def test_publish_quote_pay_and_follow_the_order_from_the_pages(people):
    provider, buyer, staff = people
    dataset = publish_from_page(provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    assert listing.state == ChainListing.State.PUBLISHED

    # The provider's page: the chain panel with the addresses and the budget, and no buy form.
    owner_page = client_as(provider)
    body = text(owner_page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert listing.datatoken_address in body and listing.nft_address in body
    assert "ε 0 of 10 ordered" in body and "ε 10 left" in body and "δ = 0.00001" in body
    assert "Publish on chain" not in body
    assert "Get a quote" not in body and "Pay and order" not in body
    refused = owner_page.post(order_url(dataset), {**ORDER, "intent": "pay"}, follow=True)
    assert "You cannot order compute on your own dataset." in text(refused)
    assert "Published" in text(owner_page.get(reverse("frontend:my-datasets")))

    # The buyer: the form, a quote, then one transaction.
    page = client_as(buyer)
    body = text(page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Get a quote" in body and "Pay and order (one transaction)" in body
    assert 'name="epsilon" value="1"' in body and 'name="delta" value="0.00001"' in body
    quote = page.post(order_url(dataset), {**ORDER, "intent": "quote"})
    assert quote.status_code == 200
    body = text(quote)
    buyer_wallet = Wallet.objects.get(user=buyer, kind="managed").address
    assert "cannot go ahead" not in body
    assert "5 USDC" in body and "0.125 USDC" in body
    assert "Epsilon left after this job" in body and "ε 9.5" in body
    assert buyer_wallet in body and "holds 1000 USDC" in body
    assert RELEASE_TEXT in body
    assert not Order.objects.exists()

    response = page.post(order_url(dataset), {**ORDER, "intent": "pay"})
    order = Order.objects.get()
    assert response.status_code == 302 and response.url == reverse("frontend:order", args=[order.pk]) + "#order-status"
    assert order.status == Order.Status.CONFIRMED, order.error
    body = text(page.get(response.url))
    assert "Confirmed" in body and 'data-order-status="confirmed"' in body
    assert f"<dd>{order.chain_order_id}</dd>" in body
    assert order.tx_hash in body and buyer_wallet in body and "5 USDC" in body
    assert "ε = 0.5" in body and "δ = 0.000001" in body and order.algorithm_hash in body
    assert "data-poll=" not in body  # nothing left to wait for

    mine = text(page.get(reverse("frontend:my-orders")))
    assert dataset.title in mine and "Confirmed" in mine and reverse("frontend:order", args=[order.pk]) in mine
    assert "ε 0.5 of 10 ordered" in text(page.get(reverse("frontend:dataset", args=[dataset.pk])))

    # Who may see the order page: the buyer, the dataset's owner, staff; nobody else.
    assert "ordered by <strong>buyer</strong>" in text(owner_page.get(reverse("frontend:order", args=[order.pk])))
    assert client_as(staff).get(reverse("frontend:order", args=[order.pk])).status_code == 200
    anonymous = Client().get(reverse("frontend:order", args=[order.pk]))
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("frontend:login"))
    stranger = client_as(UserFactory(username="stranger"))
    assert stranger.get(reverse("frontend:order", args=[order.pk])).status_code == 404
    assert "You have not ordered any compute yet." in text(stranger.get(reverse("frontend:my-orders")))


def test_a_buyer_without_funds_sees_why_and_no_order_is_made(people):
    provider, buyer, staff = people
    dataset = publish_from_page(provider, staff)
    page = client_as(UserFactory(username="poor"))

    quote = page.post(order_url(dataset), {**ORDER, "intent": "quote"})
    assert quote.status_code == 200
    body = text(quote)
    assert "This order cannot go ahead" in body
    assert "The wallet holds 0.000000 USDC; the job costs 5.000000." in body
    assert "too little ether" in body

    paid = page.post(order_url(dataset), {**ORDER, "intent": "pay"})
    assert paid.status_code == 409
    assert "Could not order." in text(paid) and "holds 0.000000 USDC" in text(paid)
    assert not Order.objects.exists()
    assert not ChainTransaction.objects.filter(purpose=ChainTransaction.Purpose.ORDER).exists()

    # The dataset's caps are checked beside the fields before anything reaches the chain.
    bad = page.post(order_url(dataset), {"epsilon": "1.5", "delta": "0.001", "algorithm": "dp-statistics"})
    assert bad.status_code == 400
    assert "At most ε 1 per job on this dataset." in text(bad) and "At most δ 0.00001 on this dataset." in text(bad)
    bad = page.post(order_url(dataset), {"epsilon": "0", "delta": "0", "algorithm": "dp-statistics"})
    assert "Epsilon must be greater than 0." in text(bad) and "Delta must be greater than 0." in text(bad)
    bad = page.post(order_url(dataset), {**ORDER, "algorithm": "raw-rows"})
    assert bad.status_code == 400 and "Select a valid choice." in text(bad)
    assert not Order.objects.exists()


def test_wallet_section_lists_wallets_with_balances_tops_up_and_switches_primary(people):
    provider, buyer, staff = people
    managed = Wallet.objects.get(user=buyer, kind="managed")
    page = client_as(buyer)
    body = text(page.get(reverse("frontend:profile")))
    assert managed.address in body and "Managed" in body and "Primary" in body
    assert "1 ETH" in body and "1000 USDC" in body
    assert "Top up with test funds" in body and "/api/v1/auth/siwe/nonce/" in body
    assert "chain not reachable" not in body

    newcomer = client_as(UserFactory(username="newcomer"))
    assert "0 USDC" in text(newcomer.get(reverse("frontend:profile")))
    response = newcomer.post(reverse("frontend:wallet-faucet"), follow=True)
    assert "Test funds sent to your managed wallet" in text(response)
    assert "1 ETH" in text(response) and "1000 USDC" in text(response)

    own = Wallet.objects.create(
        user=buyer, address=Account.create().address, kind=Wallet.Kind.EXTERNAL, verified_at=timezone.now()
    )
    body = text(page.get(reverse("frontend:profile")))
    assert own.address in body and "Own wallet" in body and "Make primary" in body
    page.post(reverse("frontend:wallet-primary", args=[own.pk]))
    own.refresh_from_db()
    managed.refresh_from_db()
    assert own.is_primary and not managed.is_primary
    assert newcomer.post(reverse("frontend:wallet-primary", args=[own.pk])).status_code == 404


def test_pages_say_the_chain_is_unreachable_instead_of_failing(people, settings):
    provider, buyer, staff = people
    dataset = publish_from_page(provider, staff)
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # nothing listens there
    client.reset_caches()
    page = client_as(buyer)
    body = text(page.get(reverse("frontend:profile")))
    assert "chain not reachable" in body and "Cannot reach the chain at http://127.0.0.1:9" in body
    assert "Top up with test funds" not in body
    # The dataset page reads the listing from the database only.
    assert ChainListing.objects.get(dataset=dataset).datatoken_address in text(
        page.get(reverse("frontend:dataset", args=[dataset.pk]))
    )
    quote = page.post(order_url(dataset), {**ORDER, "intent": "quote"})
    assert quote.status_code == 503 and "Cannot reach the chain" in text(quote)


def test_without_a_chain_the_pages_say_so(settings):
    settings.CHAIN_RPC_URL = ""
    client.reset_caches()
    provider = UserFactory(username="provider")
    staff = UserFactory(username="moderator", is_staff=True)
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    page = client_as(provider)
    body = text(page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Not published" in body and "The chain is not configured" in body and "Publish on chain" not in body
    body = text(page.get(reverse("frontend:profile")))
    assert "chain not reachable" in body and "The chain is not configured" in body
    assert Wallet.objects.get(user=provider).address in body
    response = page.post(reverse("frontend:dataset-publish", args=[dataset.pk]), follow=True)
    assert "The chain is not configured" in text(response) and not ChainListing.objects.exists()
    buyer_page = client_as(UserFactory(username="buyer"))
    assert "Get a quote" not in text(buyer_page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Not published" in text(page.get(reverse("frontend:my-datasets")))
