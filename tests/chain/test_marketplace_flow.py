"""The marketplace on a real anvil: publish -> buy+order -> verify -> receipt, through the API and
the services, with managed wallets and with an external key signing its own transaction."""

from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3.exceptions import ContractCustomError

from chain import client
from chain.deploy import send_signed
from chain.faucet import fund_address
from chain.models import ChainListing, ChainTransaction, Order, Wallet
from chain.revert import decode_revert
from chain.services import orders as order_services
from chain.services.orders.quote import ticket_issue
from chain.units import delta_to_units, epsilon_to_units
from chain.wrappers import Datatoken, MockStablecoin
from marketplace.models import Dataset
from marketplace.services.moderation import dataset_transition
from tests.factories import UserFactory, make_dataset

pytestmark = [pytest.mark.chain, pytest.mark.django_db(transaction=True)]

USDC = 10**6


def _login(api, user):
    api.force_authenticate(user)
    return api


def _publish(api, provider, staff, *, price="5", status=Dataset.Status.LISTED) -> Dataset:
    dataset = make_dataset(owner=provider, price=price, status=status, moderator=staff)
    response = _login(api, provider).post(f"/api/v1/datasets/{dataset.pk}/publish/")
    assert response.status_code == 202, response.content
    assert response.json()["state"] in ("publishing", "published")
    return dataset


def _token(on_chain, deployment) -> MockStablecoin:
    return MockStablecoin(on_chain.w3, deployment["contracts"]["MockStablecoin"])


def test_publish_buy_verify_receipt_with_managed_wallets(api, people, on_chain, deployment, accounts):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    assert listing.state == ChainListing.State.PUBLISHED, listing.error
    datatoken = Datatoken(on_chain.w3, listing.datatoken_address)
    provider_wallet = Wallet.objects.get(user=provider, kind="managed").address
    assert (
        on_chain.w3.eth.contract(address=listing.nft_address, abi=on_chain.contract("DataNFT", listing.nft_address).abi)
        .functions.ownerOf(1)
        .call()
        == provider_wallet
    )
    assert datatoken.price() == 5 * USDC
    assert datatoken.epsilon_cap() == epsilon_to_units(dataset.epsilon_total)
    assert datatoken.ordering_open() is True

    detail = api.get(f"/api/v1/datasets/{dataset.pk}/chain/").json()
    assert detail["datatoken_address"] == listing.datatoken_address
    assert detail["epsilon_left"] == "10.000000"

    _login(api, buyer)
    order_request = {"dataset": dataset.pk, "epsilon": "0.5", "delta": 1e-6, "algorithm": "dp-logistic-regression"}
    quote = api.post("/api/v1/orders/quote/", order_request, format="json").json()
    assert quote["problems"] == []
    assert Decimal(quote["price"]) == Decimal("5") and Decimal(quote["fee"]) == Decimal("0.125")
    token = _token(on_chain, deployment)
    buyer_wallet = Wallet.objects.get(user=buyer, kind="managed").address
    before = token.balance_of(buyer_wallet)

    response = api.post("/api/v1/orders/", order_request, format="json")
    assert response.status_code == 202, response.content
    order = api.get(f"/api/v1/orders/{response.json()['id']}/").json()
    assert order["status"] == "confirmed", order
    assert order["consumer_address"] == buyer_wallet
    assert order["amount"] == "5.000000"
    assert order["chain_order_id"] is not None
    assert token.balance_of(buyer_wallet) == before - 5 * USDC
    assert token.balance_of(listing.datatoken_address) == 5 * USDC  # escrow
    assert datatoken.epsilon_ordered() == 500_000
    # One transaction from the buyer did it all (permit + pay + order).
    sent = ChainTransaction.objects.filter(sender=buyer_wallet)
    assert sent.count() == 1 and sent.get().purpose == "order"

    provider_before = token.balance_of(provider_wallet)
    fee_before = token.balance_of(accounts.fee_collector.address)
    order_row = Order.objects.get(pk=order["id"])
    h = "0x" + "ab" * 32
    order_services.order_receipt_record(
        order=order_row,
        dataset_hash=dataset.commitment,
        algorithm_hash_hex=order_row.algorithm_hash,
        params_hash=h,
        result_hash=h,
    )
    order = api.get(f"/api/v1/orders/{order['id']}/").json()
    assert order["status"] == "receipted"
    assert order["receipt"]["provider_amount"] == "4.875000" and order["receipt"]["fee_amount"] == "0.125000"
    # Pull payments: the receipt credited both, and the operator's withdrawals paid them out.
    withdrawals = ChainTransaction.objects.filter(purpose="withdraw", to=listing.datatoken_address)
    assert {w.context["account"] for w in withdrawals} == {provider_wallet, accounts.fee_collector.address}
    assert {w.status for w in withdrawals} == {"mined"}
    assert token.balance_of(provider_wallet) - provider_before == 4_875_000
    assert token.balance_of(accounts.fee_collector.address) - fee_before == 125_000
    assert datatoken.credits(provider_wallet) == datatoken.credits(accounts.fee_collector.address) == 0
    assert token.balance_of(listing.datatoken_address) == 0 == datatoken.held()
    # A receipt charges the whole reservation: nothing goes back to the budget.
    assert datatoken.epsilon_ordered() == 500_000
    assert ChainListing.objects.get(pk=listing.pk).epsilon_ordered_units == 500_000
    assert Order.objects.get(pk=order["id"]).epsilon_spent == Decimal("0.5")


def test_order_refused_before_sending_when_wallet_is_short_or_budget_is_exceeded(api, people, on_chain):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff, price="5")
    poor = UserFactory(username="poor")
    _login(api, poor)
    request = {"dataset": dataset.pk, "epsilon": "0.5", "delta": 1e-6, "algorithm": "dp-statistics"}
    quote = api.post("/api/v1/orders/quote/", request, format="json").json()
    assert "insufficient_balance" in {p["code"] for p in quote["problems"]}
    response = api.post("/api/v1/orders/", request, format="json")
    assert response.status_code == 409 and response.json()["code"] == "insufficient_balance"
    assert "holds 0.000000 USDC" in response.json()["detail"]

    _login(api, buyer)
    response = api.post("/api/v1/orders/", {**request, "epsilon": "1.5"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "epsilon_per_job_exceeded"
    response = api.post("/api/v1/orders/", {**request, "delta": 1e-3}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "delta_exceeded"
    assert not ChainTransaction.objects.filter(purpose="order").exists()


def test_budget_cap_holds_on_chain_and_is_reported_with_the_amount_left(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = make_dataset(owner=provider, price="0", status=Dataset.Status.LISTED, moderator=staff)
    Dataset.objects.filter(pk=dataset.pk).update(epsilon_total=Decimal("1.5"), epsilon_per_job=Decimal("1"))
    dataset.refresh_from_db()
    _login(api, provider).post(f"/api/v1/datasets/{dataset.pk}/publish/")
    _login(api, buyer)
    request = {"dataset": dataset.pk, "epsilon": "1", "delta": 1e-6, "algorithm": "dp-statistics"}
    first = api.post("/api/v1/orders/", request, format="json").json()
    assert Order.objects.get(pk=first["id"]).status == "confirmed"  # free dataset: the dispenser path
    response = api.post("/api/v1/orders/", request, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "budget_exhausted"
    assert "epsilon 0.500000 left" in response.json()["detail"]
    # The chain itself refuses too, whoever sends the order.
    listing = ChainListing.objects.get(dataset=dataset)
    datatoken = Datatoken(on_chain.w3, listing.datatoken_address)
    ticket, signature = on_chain.ticket(
        SimpleNamespace(datatoken=datatoken.contract),
        on_chain.accounts.stranger,
        epsilon=1_000_000,
        delta=10**12,
        algorithm=b"\x01" * 32,
    )
    with pytest.raises(ContractCustomError) as excinfo:
        datatoken.contract.functions.dispenseAndOrder(ticket.as_tuple(), signature).call(
            {"from": on_chain.accounts.stranger.address}
        )
    assert decode_revert(excinfo.value.data) == ("EpsilonCapExceeded", {"requested": 1_000_000, "left": 500_000})
    assert datatoken.epsilon_left() == 500_000


def test_delisting_closes_ordering_on_chain_and_relisting_reopens_it(api, people, on_chain):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    datatoken = Datatoken(on_chain.w3, listing.datatoken_address)
    assert datatoken.ordering_open()
    dataset_transition(dataset=dataset, actor=staff, action="delist", reason="licence complaint")
    assert datatoken.operator_ordering_disabled() is True
    assert datatoken.ordering_open() is False
    assert ChainListing.objects.get(pk=listing.pk).operator_ordering_disabled is True
    # The provider still owns the NFT; only the operator's flag changed.
    assert listing.owner_address == Wallet.objects.get(user=provider, kind="managed").address
    dataset_transition(dataset=Dataset.objects.get(pk=dataset.pk), actor=staff, action="relist", reason="resolved")
    assert datatoken.ordering_open() is True


def test_a_dataset_published_before_approval_cannot_be_ordered_until_listed(api, people, on_chain):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff, status=Dataset.Status.PENDING_REVIEW)
    datatoken = Datatoken(on_chain.w3, ChainListing.objects.get(dataset=dataset).datatoken_address)
    assert datatoken.ordering_open() is False
    dataset_transition(dataset=Dataset.objects.get(pk=dataset.pk), actor=staff, action="approve", reason="fine")
    assert datatoken.ordering_open() is True


def test_refund_returns_the_payment_and_releases_the_budget(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    _login(api, buyer)
    request = {"dataset": dataset.pk, "epsilon": "0.5", "delta": 1e-6, "algorithm": "dp-statistics"}
    order = Order.objects.get(pk=api.post("/api/v1/orders/", request, format="json").json()["id"])
    token = _token(on_chain, deployment)
    before = token.balance_of(order.consumer_address)
    order_services.order_refund(order=order)
    order.refresh_from_db()
    assert order.status == "refunded"
    assert token.balance_of(order.consumer_address) == before + 5 * USDC
    assert Datatoken(on_chain.w3, order.listing.datatoken_address).epsilon_ordered() == 0
    with pytest.raises(Exception, match="Only a confirmed order"):
        order_services.order_refund(order=order)


def _siwe_link(api, user, account) -> None:
    _login(api, user)
    nonce = api.post("/api/v1/auth/siwe/nonce/", {"address": account.address}, format="json").json()
    signature = account.sign_message(encode_defunct(text=nonce["message"])).signature.to_0x_hex()
    response = api.post(
        "/api/v1/auth/siwe/verify/", {"message": nonce["message"], "signature": signature}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["linked"] is True


def _own_order_tx(on_chain, deployment, account, datatoken_address, *, user, epsilon, delta, algorithm_hash) -> str:
    """The integrator's side: with the order ticket the marketplace issued ``user`` for this wallet
    (what POST orders/prepare/ hands out), sign buy+order (with a permit) with their own key and send it."""
    w3 = on_chain.w3
    token = _token(on_chain, deployment)
    datatoken = Datatoken(w3, datatoken_address)
    price = datatoken.price()
    issued = ticket_issue(
        user=user,
        listing=ChainListing.objects.get(datatoken_address=datatoken.address),
        datatoken=datatoken,
        buyer_address=account.address,
        epsilon_units=epsilon,
        delta_units=delta,
        algorithm_hash_bytes=algorithm_hash,
        price_units=price,
    )
    deadline = int(time.time()) + 3600
    v, r, s = token.permit_signature(account, datatoken.address, price, deadline, chain_id=w3.eth.chain_id)
    data = datatoken.buy_and_order_data(ticket=issued.call, signature=issued.signature, permit=(deadline, v, r, s))
    receipt = send_signed(w3, account, {"to": datatoken.address, "data": data})
    return receipt["transactionHash"].to_0x_hex()


def test_external_key_orders_its_own_transaction_and_the_server_verifies_it(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    own = Account.create()
    fund_address(on_chain.w3, deployment, own.address)
    _siwe_link(api, buyer, own)
    algo = order_services.algorithm_hash("dp-mlp-classifier", {"epochs": 3})
    tx_hash = _own_order_tx(
        on_chain,
        deployment,
        own,
        listing.datatoken_address,
        user=buyer,
        epsilon=epsilon_to_units("0.25"),
        delta=delta_to_units(1e-6),
        algorithm_hash=bytes.fromhex(algo[2:]),
    )
    request = {
        "dataset": dataset.pk,
        "epsilon": "0.25",
        "delta": 1e-6,
        "algorithm": "dp-mlp-classifier",
        "parameters": {"epochs": 3},
        "tx_hash": tx_hash,
    }
    response = api.post("/api/v1/orders/", request, format="json")
    assert response.status_code == 202, response.content
    order = api.get(f"/api/v1/orders/{response.json()['id']}/").json()
    assert order["status"] == "confirmed", order
    assert order["consumer_address"] == own.address and order["source"] == "external"

    # The same payment cannot buy a second job.
    again = api.post("/api/v1/orders/", request, format="json")
    assert again.status_code == 409 and again.json()["code"] == "order_replayed"

    # Someone else registering that transaction gets nothing: the consumer is not their wallet.
    other = UserFactory(username="other")
    Order.objects.filter(tx_hash=tx_hash).update(tx_hash="")  # free the hash to test the consumer check
    response = _login(api, other).post("/api/v1/orders/", request, format="json")
    rejected = api.get(f"/api/v1/orders/{response.json()['id']}/").json()
    assert rejected["status"] == "rejected"
    assert "not one of your wallets" in rejected["error"] or "already used" in rejected["error"]


def test_external_order_that_does_not_match_the_request_is_rejected(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    own = Account.create()
    fund_address(on_chain.w3, deployment, own.address)
    _siwe_link(api, buyer, own)
    tx_hash = _own_order_tx(
        on_chain,
        deployment,
        own,
        listing.datatoken_address,
        user=buyer,
        epsilon=epsilon_to_units("0.9"),
        delta=delta_to_units(1e-6),
        algorithm_hash=b"\x07" * 32,
    )
    request = {"dataset": dataset.pk, "epsilon": "0.25", "delta": 1e-6, "algorithm_hash": "0x" + "07" * 32}
    order_id = _login(api, buyer).post("/api/v1/orders/", {**request, "tx_hash": tx_hash}, format="json").json()["id"]
    order = api.get(f"/api/v1/orders/{order_id}/").json()
    assert order["status"] == "rejected"
    assert "epsilon 0.9" in order["error"]


def test_siwe_refuses_replays_other_domains_and_forged_signatures_and_signs_in(api, people, on_chain):
    provider, buyer, staff = people
    own = Account.create()
    _siwe_link(api, buyer, own)
    anonymous = type(api)()
    nonce = anonymous.post("/api/v1/auth/siwe/nonce/", {"address": own.address}, format="json").json()
    message = nonce["message"]
    signature = own.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    # Signed out, a linked wallet signs in and gets an API token.
    response = anonymous.post("/api/v1/auth/siwe/verify/", {"message": message, "signature": signature}, format="json")
    assert response.status_code == 200 and response.json()["username"] == "buyer" and response.json()["token"]
    # The same signed message cannot be used twice.
    replay = type(api)().post("/api/v1/auth/siwe/verify/", {"message": message, "signature": signature}, format="json")
    assert replay.status_code == 403 and replay.json()["code"] == "siwe_nonce_used"
    # A message for another site is refused.
    nonce = anonymous.post("/api/v1/auth/siwe/nonce/", {"address": own.address}, format="json").json()
    phishing = nonce["message"].replace(nonce["domain"], "evil.example", 1)
    sig = own.sign_message(encode_defunct(text=phishing)).signature.to_0x_hex()
    response = type(api)().post("/api/v1/auth/siwe/verify/", {"message": phishing, "signature": sig}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "siwe_wrong_domain"
    # A signature by another key is refused.
    nonce = anonymous.post("/api/v1/auth/siwe/nonce/", {"address": own.address}, format="json").json()
    forged = Account.create().sign_message(encode_defunct(text=nonce["message"])).signature.to_0x_hex()
    response = type(api)().post(
        "/api/v1/auth/siwe/verify/", {"message": nonce["message"], "signature": forged}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "siwe_bad_signature"
    # An unlinked wallet cannot sign in.
    stranger = Account.create()
    nonce = anonymous.post("/api/v1/auth/siwe/nonce/", {"address": stranger.address}, format="json").json()
    sig = stranger.sign_message(encode_defunct(text=nonce["message"])).signature.to_0x_hex()
    response = type(api)().post(
        "/api/v1/auth/siwe/verify/", {"message": nonce["message"], "signature": sig}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "wallet_unknown"


def test_wallets_api_lists_the_managed_wallet_with_balances_and_the_key_is_encrypted(api, people, on_chain):
    provider, buyer, staff = people
    wallets = _login(api, buyer).get("/api/v1/wallets/").json()
    assert len(wallets) == 1 and wallets[0]["kind"] == "managed" and wallets[0]["is_primary"]
    assert Decimal(wallets[0]["balances"]["payment_token"]) >= 1000
    wallet = Wallet.objects.get(user=buyer)
    account_key = bytes(wallet.encrypted_key)
    assert len(account_key) > 32 and "encrypted_key" not in wallets[0]
    from chain.services.wallets import wallet_signer

    assert wallet_signer(address=wallet.address).address == wallet.address
    api.force_authenticate(None)
    assert api.get("/api/v1/wallets/").status_code in (401, 403)


def test_chain_info_and_clear_errors_for_a_wrong_or_unreachable_chain(api, on_chain, settings, deployment):
    info = api.get("/api/v1/chain/").json()
    assert info["chain_id"] == deployment["chain_id"]
    assert info["contracts"]["DataFactory"] == deployment["contracts"]["DataFactory"]
    assert info["payment_token_symbol"] == "USDC"
    assert client.chain_preflight().chain_id == deployment["chain_id"]

    settings.CHAIN_ID = 1
    client.reset_caches()
    with pytest.raises(client.ChainUnavailable, match="Wrong chain: .* reports chain id 31337, but CHAIN_ID is 1"):
        client.chain_preflight()
    settings.CHAIN_ID = 0
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # nothing listens there
    client.reset_caches()
    with pytest.raises(client.ChainUnavailable, match="The chain node does not answer"):
        client.chain_preflight()
    response = api.get("/api/v1/chain/")
    assert response.status_code == 503 and response.json()["code"] == "chain_unavailable"
    assert "127.0.0.1:9" not in response.content.decode(), "the RPC URL (it can carry an API key) is not shown"


def test_publishing_needs_the_owner_and_a_confirmed_schema(api, people, on_chain):
    provider, buyer, staff = people
    dataset = make_dataset(owner=provider, status=Dataset.Status.DRAFT, declare=False)
    response = _login(api, provider).post(f"/api/v1/datasets/{dataset.pk}/publish/")
    assert response.status_code == 409 and response.json()["code"] == "schema_not_declared"
    listed = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff, title="Other")
    response = _login(api, buyer).post(f"/api/v1/datasets/{listed.pk}/publish/")
    assert response.status_code == 403
    _login(api, provider).post(f"/api/v1/datasets/{listed.pk}/publish/")
    again = api.post(f"/api/v1/datasets/{listed.pk}/publish/")
    assert again.status_code == 409 and again.json()["code"] == "published"


def test_buyer_claims_an_order_the_indexer_saw_first(api, people, on_chain, deployment):
    from chain.services.indexer import indexer_run

    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    own = Account.create()
    fund_address(on_chain.w3, deployment, own.address)
    algo = order_services.algorithm_hash("dp-statistics", {})
    tx_hash = _own_order_tx(
        on_chain,
        deployment,
        own,
        listing.datatoken_address,
        user=buyer,
        epsilon=epsilon_to_units("0.5"),
        delta=delta_to_units(1e-6),
        algorithm_hash=bytes.fromhex(algo[2:]),
    )
    indexer_run()
    seen = Order.objects.get(tx_hash=tx_hash)
    assert seen.buyer is None and seen.source == "chain"  # the wallet was not linked yet
    _siwe_link(api, buyer, own)
    request = {"dataset": dataset.pk, "epsilon": "0.5", "delta": 1e-6, "algorithm": "dp-statistics"}
    response = api.post("/api/v1/orders/", {**request, "tx_hash": tx_hash}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["id"] == seen.pk and response.json()["buyer"] == "buyer"
    # Nobody else can claim it afterwards.
    other = UserFactory(username="other")
    again = _login(api, other).post("/api/v1/orders/", {**request, "tx_hash": tx_hash}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "order_replayed"


def _own_publish_tx(on_chain, account, body: dict, **override) -> str:
    """The integrator's side: send DataFactory.publish with the arguments the API gave, signed by their key."""
    from chain.wrappers import DataFactory, PublishParams

    p = {**body["params"], **override}
    params = PublishParams(
        name=p["name"],
        symbol=p["symbol"],
        metadata_uri=p["metadataURI"],
        metadata_hash=bytes.fromhex(p["metadataHash"][2:]),
        payment_token=p["paymentToken"],
        price=p["price"],
        epsilon_cap=p["epsilonCap"],
        epsilon_per_job_cap=p["epsilonPerJobCap"],
        delta_cap=p["deltaCap"],
        delta_per_job_cap=p["deltaPerJobCap"],
    )
    factory = DataFactory(on_chain.w3, body["factory"])
    receipt = send_signed(on_chain.w3, account, {"to": factory.address, "data": factory.publish_data(params)})
    return receipt["transactionHash"].to_0x_hex()


def test_integrator_publishes_with_their_own_key_and_the_server_verifies_it(api, people, on_chain, deployment):
    provider, buyer, staff = people
    own = Account.create()
    fund_address(on_chain.w3, deployment, own.address)
    _siwe_link(api, provider, own)
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    body = api.get(f"/api/v1/datasets/{dataset.pk}/publish/").json()
    assert body["params"]["price"] == 5 * USDC and body["factory"] == deployment["contracts"]["DataFactory"]
    tx_hash = _own_publish_tx(on_chain, own, body)
    response = api.post(f"/api/v1/datasets/{dataset.pk}/publish/", {"tx_hash": tx_hash}, format="json")
    assert response.status_code == 202, response.content
    listing = api.get(f"/api/v1/datasets/{dataset.pk}/chain/").json()
    assert listing["state"] == "published", listing
    assert listing["owner_address"] == own.address
    assert Datatoken(on_chain.w3, listing["datatoken_address"]).price() == 5 * USDC

    # A publish whose caps differ from the listing's is not accepted.
    other = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff, title="Second")
    body = api.get(f"/api/v1/datasets/{other.pk}/publish/").json()
    tx_hash = _own_publish_tx(on_chain, own, body, epsilonCap=body["params"]["epsilonCap"] * 10)
    api.post(f"/api/v1/datasets/{other.pk}/publish/", {"tx_hash": tx_hash}, format="json")
    listing = api.get(f"/api/v1/datasets/{other.pk}/chain/").json()
    assert listing["state"] == "failed" and "epsilonCap is 100000000 on chain" in listing["error"]


def test_a_transaction_that_cannot_be_sent_fails_with_its_reason_instead_of_hanging(api, people, on_chain):
    from chain.tasks import transaction_send_task

    stranger = "0x000000000000000000000000000000000000dEaD"  # nobody holds its key
    tx = ChainTransaction.objects.create(
        chain_id=31337, purpose="faucet", sender=stranger, to=stranger, data="0x", context={}
    )
    transaction_send_task.delay(tx.pk)
    tx.refresh_from_db()
    assert tx.status == "failed"
    assert "holds no key" in tx.error


def test_listings_of_an_earlier_chain_with_the_same_id_are_retired_and_can_be_published_again(api, people, on_chain):
    from chain.services.publishing import listings_retire_stale

    provider, buyer, staff = people
    dataset = _publish(api, provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    assert listing.genesis_hash == on_chain.w3.eth.get_block(0)["hash"].to_0x_hex()
    assert listings_retire_stale(chain_id=listing.chain_id, genesis_hash=listing.genesis_hash) == 0
    assert listings_retire_stale(chain_id=listing.chain_id, genesis_hash="0x" + "11" * 32) == 1
    listing.refresh_from_db()
    assert listing.state == "failed" and "publish the dataset again" in listing.error
    response = _login(api, provider).post(f"/api/v1/datasets/{dataset.pk}/publish/")
    assert response.status_code == 202
    assert api.get(f"/api/v1/datasets/{dataset.pk}/chain/").json()["state"] == "published"


def test_a_stale_nonce_record_leaves_no_gap(api, people, on_chain):
    """After the node dropped transactions or a development chain started afresh, the marketplace's
    nonce record is ahead of the chain; the next transaction must still be mined."""
    from chain.models import AccountNonce

    provider, buyer, staff = people
    wallet = Wallet.objects.get(user=provider, kind="managed").address
    AccountNonce.objects.update_or_create(chain_id=31337, address=wallet, defaults={"next_nonce": 99})
    dataset = _publish(api, provider, staff)
    assert ChainListing.objects.get(dataset=dataset).state == "published"
    assert ChainTransaction.objects.get(purpose="publish", sender=wallet).nonce < 99


def test_a_forked_worker_process_gets_its_own_node_connection(on_chain):
    """Celery's prefork children must not share the parent's keep-alive connection: two processes
    writing to one socket interleave their requests and the node answers 'Invalid request'."""
    import os

    parent = client.web3()
    assert parent.eth.chain_id == 31337
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh client that works
        child = client.web3()
        ok = child is not parent and child.eth.chain_id == 31337
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert parent.eth.chain_id == 31337  # the parent's connection is intact
