"""POST /api/v1/orders/prepare/: an own wallet (browser wallet or API client) gets the EIP-2612
permit to sign, then the unsigned buy+order transaction carrying it; signed and sent by the key
alone, the order is verified like any other. Refusals come before anything is signed. Also:
signing up with a wallet (SIWE ``create_account``) and the job form's browser-wallet step."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from chain.faucet import fund_address
from chain.models import ChainListing, Order, Wallet
from chain.services import orders as order_services
from chain.wrappers import Datatoken, MockStablecoin
from compute_to_data.services import jobs as job_services
from frontend.forms import JobForm
from frontend.presenters import algorithm_described
from marketplace.models import Dataset, User
from marketplace.services.moderation import dataset_transition
from tests.compute_to_data.support import training_csv
from tests.factories import UserFactory, make_dataset

pytestmark = [pytest.mark.chain, pytest.mark.django_db(transaction=True)]

USDC = 10**6
ALGO = order_services.algorithm_hash("dp-statistics", {"epsilon": 0.5})


def _login(api, user):
    api.force_authenticate(user)
    return api


def _listed(api, provider, staff, *, price="5", data: bytes | None = None) -> Dataset:
    kwargs = {"data": data, "filename": "trial.csv"} if data else {}
    dataset = make_dataset(owner=provider, price=price, status=Dataset.Status.LISTED, moderator=staff, **kwargs)
    assert _login(api, provider).post(f"/api/v1/datasets/{dataset.pk}/publish/").status_code == 202
    assert ChainListing.objects.get(dataset=dataset).state == ChainListing.State.PUBLISHED
    return dataset


def _siwe(api, account, **extra):
    nonce = api.post("/api/v1/auth/siwe/nonce/", {"address": account.address}, format="json").json()
    signature = account.sign_message(encode_defunct(text=nonce["message"])).signature.to_0x_hex()
    return api.post(
        "/api/v1/auth/siwe/verify/", {"message": nonce["message"], "signature": signature, **extra}, format="json"
    )


def _own_key(api, user, on_chain, deployment, *, funded: bool = True):
    account = Account.create()
    if funded:
        fund_address(on_chain.w3, deployment, account.address)
    response = _siwe(_login(api, user), account)
    assert response.status_code == 200 and response.json()["linked"] is True, response.content
    return account


def _request(dataset, account, **overrides) -> dict:
    return {
        "dataset": dataset.pk,
        "epsilon": "0.5",
        "delta": 1e-6,
        "algorithm_hash": ALGO,
        "wallet": account.address,
        **overrides,
    }


def _send(on_chain, account, transaction: dict) -> str:
    """What an integrator does with the prepared transaction: sign it with their key, send it raw."""
    signed = account.sign_transaction(
        {
            "chainId": transaction["chain_id"],
            "nonce": transaction["nonce"],
            "to": transaction["to"],
            "data": transaction["data"],
            "value": transaction["value"],
            "gas": transaction["gas"],
            "maxFeePerGas": transaction["max_fee_per_gas"],
            "maxPriorityFeePerGas": transaction["max_priority_fee_per_gas"],
        }
    )
    tx_hash = on_chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = on_chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return tx_hash.to_0x_hex()


def test_own_key_signs_the_permit_then_one_transaction_pays_and_orders(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _listed(api, provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    own = _own_key(api, buyer, on_chain, deployment)
    token = MockStablecoin(on_chain.w3, deployment["contracts"]["MockStablecoin"])
    before = token.balance_of(own.address)

    first = api.post("/api/v1/orders/prepare/", _request(dataset, own), format="json")
    assert first.status_code == 200, first.content
    step = first.json()
    assert step["step"] == "sign_permit" and step["transaction"] is None
    assert step["price_units"] == 5 * USDC and step["price"] == "5.000000" and step["payment_token_symbol"] == "USDC"
    assert step["datatoken"] == listing.datatoken_address and step["chain_id"] == on_chain.w3.eth.chain_id
    permit = step["permit"]
    assert permit["primaryType"] == "Permit" and "EIP712Domain" in permit["types"]
    assert permit["domain"]["verifyingContract"] == token.address and permit["domain"]["chainId"] == 31337
    assert permit["message"] == {
        "owner": own.address,
        "spender": listing.datatoken_address,
        "value": str(5 * USDC),
        "nonce": "0",
        "deadline": str(step["deadline"]),
    }
    assert step["deadline"] > time.time()

    signature = own.sign_typed_data(full_message=permit).signature.to_0x_hex()
    second = api.post(
        "/api/v1/orders/prepare/",
        _request(dataset, own, permit_signature=signature, deadline=step["deadline"]),
        format="json",
    )
    assert second.status_code == 200, second.content
    tx = second.json()["transaction"]
    assert second.json()["step"] == "send_transaction" and second.json()["permit"] is None
    assert tx["from"] == own.address and tx["to"] == listing.datatoken_address and tx["value"] == 0
    assert tx["nonce"] == on_chain.w3.eth.get_transaction_count(own.address) and tx["gas"] > 100_000
    function, args = Datatoken(on_chain.w3, listing.datatoken_address).contract.decode_function_input(tx["data"])
    ticket = second.json()["ticket"]
    assert (
        function.fn_name == "buyAndOrder"
        and args["ticket"]["price"] == 5 * USDC == int(ticket["price"])
        and args["ticket"]["nonce"] == int(ticket["nonce"])
        and "0x" + args["signature"].hex() == ticket["signature"]
        and args["permitDeadline"] == step["deadline"]
    )
    assert Order.objects.count() == 0  # preparing orders nothing

    tx_hash = _send(on_chain, own, tx)
    order_request = {k: v for k, v in _request(dataset, own).items() if k != "wallet"}
    response = api.post("/api/v1/orders/", {**order_request, "tx_hash": tx_hash}, format="json")
    assert response.status_code == 202, response.content
    order = api.get(f"/api/v1/orders/{response.json()['id']}/").json()
    assert order["status"] == "confirmed", order
    assert order["consumer_address"] == own.address and order["amount"] == "5.000000"
    assert token.balance_of(own.address) == before - 5 * USDC
    # One transaction from the key: no separate approve.
    assert on_chain.w3.eth.get_transaction_count(own.address) == 1


def test_a_free_dataset_needs_no_permit(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _listed(api, provider, staff, price="0")
    own = _own_key(api, buyer, on_chain, deployment)
    step = api.post("/api/v1/orders/prepare/", _request(dataset, own), format="json").json()
    assert step["step"] == "send_transaction" and step["permit"] is None and step["price_units"] == 0
    tx_hash = _send(on_chain, own, step["transaction"])
    order_request = {k: v for k, v in _request(dataset, own).items() if k != "wallet"}
    order_id = api.post("/api/v1/orders/", {**order_request, "tx_hash": tx_hash}, format="json").json()["id"]
    assert api.get(f"/api/v1/orders/{order_id}/").json()["status"] == "confirmed"


def test_refusals_come_before_anything_is_signed(api, people, on_chain, deployment):
    provider, buyer, staff = people
    dataset = _listed(api, provider, staff)
    own = _own_key(api, buyer, on_chain, deployment)

    def refused(body: dict, user=buyer) -> tuple[int, str, str]:
        response = _login(api, user).post("/api/v1/orders/prepare/", body, format="json")
        return response.status_code, response.json()["code"], response.json()["detail"]

    stranger = Account.create()
    status, code, detail = refused(_request(dataset, stranger))
    assert (status, code) == (403, "wallet_not_linked") and "Sign-In with Ethereum" in detail
    managed = Wallet.objects.get(user=buyer, kind="managed").address
    assert refused({**_request(dataset, own), "wallet": managed})[:2] == (409, "managed_wallet")
    assert refused({**_request(dataset, own), "wallet": "0x1234"})[:2] == (400, "invalid_address")
    status, code, detail = refused(_request(dataset, own, epsilon="5"))
    assert (status, code) == (409, "epsilon_per_job_exceeded") and "per job" in detail
    assert refused(_request(dataset, own, delta=0.5))[:2] == (409, "delta_exceeded")
    assert refused(_request(dataset, own, algorithm_hash="0x12"))[:2] == (400, "invalid")
    provider_key = _own_key(api, provider, on_chain, deployment, funded=False)
    assert refused(_request(dataset, provider_key), user=provider)[:2] == (409, "own_dataset")

    poor = _own_key(api, UserFactory(username="poor"), on_chain, deployment, funded=False)
    status, code, detail = refused(_request(dataset, poor), user=User.objects.get(username="poor"))
    assert (status, code) == (409, "insufficient_balance") and "costs 5.000000" in detail

    # A permit signed by another key, or for another deadline, or expired, is refused.
    step = _login(api, buyer).post("/api/v1/orders/prepare/", _request(dataset, own), format="json").json()
    forged = stranger.sign_typed_data(full_message=step["permit"]).signature.to_0x_hex()
    body = _request(dataset, own, permit_signature=forged, deadline=step["deadline"])
    status, code, detail = refused(body)
    assert (status, code) == (400, "permit_bad_signature") and own.address in detail
    signed = own.sign_typed_data(full_message=step["permit"]).signature.to_0x_hex()
    assert refused(_request(dataset, own, permit_signature=signed, deadline=step["deadline"] + 1))[1] == (
        "permit_bad_signature"
    )
    old = {**step["permit"], "message": {**step["permit"]["message"], "deadline": "1000"}}
    expired = own.sign_typed_data(full_message=old).signature.to_0x_hex()
    assert refused(_request(dataset, own, permit_signature=expired, deadline=1000))[:2] == (409, "permit_expired")
    assert refused(_request(dataset, own, permit_signature=signed))[:2] == (400, "invalid")  # no deadline

    # Delisted: hidden from buyers, so not orderable (the operator also closes ordering on chain).
    dataset_transition(dataset=dataset, actor=staff, action="delist", reason="Licence dispute.")
    assert refused(_request(dataset, own))[:2] == (404, "not_found")
    assert Order.objects.count() == 0


def test_siwe_signs_up_a_new_account_from_a_wallet_only_when_asked(api, people, on_chain):
    newcomer = Account.create()
    assert _siwe(type(api)(), newcomer).json()["code"] == "wallet_unknown"
    response = _siwe(type(api)(), newcomer, create_account=True)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["linked"] is False and body["token"] and body["username"].startswith("wallet-")
    user = User.objects.get(username=body["username"])
    assert not user.has_usable_password()
    kinds = sorted(Wallet.objects.filter(user=user).values_list("kind", flat=True))
    assert kinds == ["external", "managed"]
    # The same wallet signs in to the same account afterwards, with or without the flag.
    again = _siwe(type(api)(), newcomer, create_account=True).json()
    assert again["username"] == body["username"] and User.objects.filter(username__startswith="wallet-").count() == 1


def test_job_form_wallet_step_gives_the_parameters_and_hash_the_job_api_accepts(
    client, api, people, on_chain, deployment
):
    provider, buyer, staff = people
    dataset = _listed(api, provider, staff, price="3", data=training_csv())
    client.force_login(buyer)
    # The form as the page renders it (defaults filled in), with the buyer's epsilon and delta.
    form = JobForm(algorithm=algorithm_described("dp-statistics"), dataset=dataset)
    fields = {name: form[name].value() for name in form.fields if form[name].value() not in (None, "")}
    response = client.post(f"/datasets/{dataset.pk}/job/wallet/", {**fields, "epsilon": "0.5", "delta": "0.000001"})
    assert response.status_code == 200, response.content
    prepared = response.json()
    assert prepared["dataset"] == dataset.pk and prepared["algorithm"] == "dp-statistics"
    assert prepared["epsilon"] == "0.5" and prepared["delta"] == 1e-6
    # What POST jobs/ will compute from these parameters is what the order commits to.
    again = job_services.parameters_for(dataset=dataset, algorithm="dp-statistics", parameters=prepared["parameters"])
    assert again == prepared["parameters"]
    assert job_services.params_hash("dp-statistics", again) == prepared["params_hash"]
    own = _own_key(api, buyer, on_chain, deployment)
    step = api.post(
        "/api/v1/orders/prepare/",
        {
            "dataset": dataset.pk,
            "epsilon": prepared["epsilon"],
            "delta": prepared["delta"],
            "algorithm_hash": prepared["params_hash"],
            "wallet": own.address,
        },
        format="json",
    )
    assert step.status_code == 200 and Decimal(step.json()["price"]) == Decimal("3")
    # Bad input answers JSON naming the field; another user's dataset of their own is refused.
    bad = client.post(f"/datasets/{dataset.pk}/job/wallet/", {**fields, "epsilon": "-1"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_parameters" and "epsilon" in bad.json()["detail"]
    # An epsilon the job API would refuse after payment is refused before anything is signed.
    fine = client.post(f"/datasets/{dataset.pk}/job/wallet/", {**fields, "epsilon": "0.12345"})
    assert fine.status_code == 400 and "4 decimal places" in fine.json()["detail"]
    client.force_login(provider)
    mine = client.post(f"/datasets/{dataset.pk}/job/wallet/", fields)
    assert mine.status_code == 409 and "your own dataset" in mine.json()["detail"]


def test_openapi_describes_prepare_with_examples(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/orders/prepare/"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) >= 2
    answers = operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert any(e["value"]["step"] == "sign_permit" for e in answers.values())
    assert "wallet_rpc_url" in str(schema["components"]["schemas"])


def test_the_dev_faucet_also_funds_linked_own_wallets(api, people, on_chain, deployment):
    provider, buyer, staff = people
    own = _own_key(api, buyer, on_chain, deployment, funded=False)
    token = MockStablecoin(on_chain.w3, deployment["contracts"]["MockStablecoin"])
    assert token.balance_of(own.address) == 0
    assert _login(api, buyer).post("/api/v1/wallets/faucet/").status_code == 200
    assert token.balance_of(own.address) == 1_000 * USDC and on_chain.w3.eth.get_balance(own.address) > 0
