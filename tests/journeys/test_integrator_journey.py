"""The integrator's journey: a person creates an API token on the profile page (a real Chromium),
then a program does the buyer's journey over REST with nothing but ``requests`` and its own key
(``eth-account``): search, dataset, algorithms, budget, job quote, link the key with Sign-In with
Ethereum, prepare the order (sign the EIP-2612 permit, get the buy+order transaction), sign and
send it to the chain itself, run the job (the real worker runs it in the sandbox), follow it,
download the results and check the receipt against the chain."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal

import pytest
import requests
from eth_account import Account
from eth_account.messages import encode_defunct

from chain.faucet import fund_address
from tests.browser_support import DESKTOP, log_in, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.chain,
    pytest.mark.django_db(transaction=True),
]

TITLE = "Cardiology outpatients"
USDC = 10**6


def _token_from_profile(browser, base: str, username: str) -> str:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, base, username)
    page.goto(f"{base}/me/")
    page.get_by_role("button", name="Create token").click()
    page.get_by_text("New API token created.").wait_for()
    token = page.get_by_label("Your token").input_value()
    shot(page, "profile-api-token")
    context.close()
    assert len(token) == 40
    return token


class Rest:
    """A plain HTTP client of the marketplace's API, as an integrator writes one."""

    def __init__(self, base: str, token: str) -> None:
        self.base = f"{base}/api/v1"
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})

    def get(self, path: str, **params) -> dict:
        response = self.http.get(f"{self.base}{path}", params=params, timeout=30)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def post(self, path: str, body: dict, expect: int = 200) -> dict:
        response = self.http.post(f"{self.base}{path}", json=body, timeout=60)
        assert response.status_code == expect, (path, response.status_code, response.text)
        return response.json()


def _rpc(url: str, method: str, params: list):
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30).json()
    assert "error" not in answer, answer
    return answer["result"]


def _poll(fetch, done, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {value}")
        time.sleep(0.5)


def test_integrator_creates_a_token_then_buys_a_job_over_rest_signing_with_their_own_key(stack, browser):
    base = stack.url
    dataset = stack.listed(title=TITLE, price="3", epsilon_total="10", per_job="2")
    token = _token_from_profile(browser, base, stack.buyer.username)
    api = Rest(base, token)
    key = Account.create()  # the integrator's own key: the marketplace never sees it
    fund_address(stack.chain.w3, stack.chain.deployment, key.address)
    rpc = stack.chain.node.rpc_url

    # --- browse: search, dataset, algorithms, budget ----------------------------------------------
    found = api.get("/datasets/", q="cardiology")
    assert [d["id"] for d in found["results"]] == [dataset.pk]
    detail = api.get(f"/datasets/{dataset.pk}/")
    assert detail["title"] == TITLE and "never rows" not in detail.get("description", "")
    algorithms = {a["name"]: a for a in api.get("/algorithms/")["algorithms"]}
    assert "dp-statistics" in algorithms
    budget = api.get(f"/datasets/{dataset.pk}/budget/")
    assert budget["epsilon_left"] == "10.000000"
    chain = api.get("/chain/")
    assert chain["chain_id"] == 31337

    # --- a quote: the parameters' hash is what the order commits to -------------------------------
    job_request = {"dataset": dataset.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.5}}
    quote = api.post("/jobs/quote/", job_request)
    assert quote["problems"] == [] and Decimal(quote["epsilon"]) == Decimal("0.5")

    # --- link the key with Sign-In with Ethereum --------------------------------------------------
    nonce = api.post("/auth/siwe/nonce/", {"address": key.address})
    signature = key.sign_message(encode_defunct(text=nonce["message"])).signature.to_0x_hex()
    linked = api.post("/auth/siwe/verify/", {"message": nonce["message"], "signature": signature})
    assert linked["linked"] is True and linked["wallet"]["address"] == key.address

    # --- prepare: the permit to sign, then the transaction carrying it ----------------------------
    order = {
        "dataset": dataset.pk,
        "epsilon": quote["epsilon"],
        "delta": quote["delta"],
        "algorithm_hash": quote["params_hash"],
        "wallet": key.address,
    }
    step = api.post("/orders/prepare/", order)
    assert step["step"] == "sign_permit" and step["price"] == "3.000000"
    permit_signature = key.sign_typed_data(full_message=step["permit"]).signature.to_0x_hex()
    step = api.post("/orders/prepare/", {**order, "permit_signature": permit_signature, "deadline": step["deadline"]})
    tx = step["transaction"]
    assert step["step"] == "send_transaction" and tx["from"] == key.address
    balance_before = int(
        _rpc(
            rpc,
            "eth_call",
            [{"to": step["payment_token"], "data": "0x70a08231" + key.address[2:].rjust(64, "0")}, "latest"],
        ),
        16,
    )
    signed = key.sign_transaction(
        {
            "chainId": tx["chain_id"],
            "nonce": tx["nonce"],
            "to": tx["to"],
            "data": tx["data"],
            "value": tx["value"],
            "gas": tx["gas"],
            "maxFeePerGas": tx["max_fee_per_gas"],
            "maxPriorityFeePerGas": tx["max_priority_fee_per_gas"],
        }
    )
    tx_hash = _rpc(rpc, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
    receipt = _poll(
        lambda: _rpc(rpc, "eth_getTransactionReceipt", [tx_hash]), bool, timeout=30, what="the order's receipt"
    )
    assert receipt["status"] == "0x1"

    # --- the job, paid by that transaction; the worker runs it -----------------------------------
    job = api.post("/jobs/", {**job_request, "parameters": quote["parameters"], "tx_hash": tx_hash}, expect=202)
    assert job["status"] in ("created", "paid", "queued")
    job = _poll(
        lambda: api.get(f"/jobs/{job['id']}/"),
        lambda j: j["status"] in ("finished", "failed", "cancelled", "rejected"),
        timeout=180,
        what="the job to end",
    )
    assert job["status"] == "finished", job
    orders = api.get("/orders/")["results"]
    assert len(orders) == 1 and orders[0]["consumer_address"] == key.address and orders[0]["amount"] == "3.000000"
    balance_after = int(
        _rpc(
            rpc,
            "eth_call",
            [{"to": step["payment_token"], "data": "0x70a08231" + key.address[2:].rjust(64, "0")}, "latest"],
        ),
        16,
    )
    assert balance_before - balance_after == 3 * USDC

    # --- results: listed with their hashes, downloaded, checked ---------------------------------
    result = api.get(f"/jobs/{job['id']}/result/")
    assert result["artifacts"], result
    for artifact in result["artifacts"]:
        download = api.http.get(f"{api.base}/jobs/{job['id']}/result/{artifact['name']}/", timeout=30)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"]
        assert download.headers["X-Content-SHA256"] == artifact["sha256"]
    logs = api.get(f"/jobs/{job['id']}/logs/")
    assert any("Payment confirmed on chain" in entry["message"] for entry in logs)

    # --- the receipt, once recorded on chain, verifies ------------------------------------------
    receipt = _poll(
        lambda: api.get(f"/jobs/{job['id']}/receipt/"),
        lambda r: r["verified"] is not None,
        timeout=90,
        what="the receipt on chain",
    )
    assert receipt["verified"] is True, receipt["checks"]
    assert all(check["ok"] for check in receipt["checks"])
    assert api.get("/orders/")["results"][0]["status"] == "receipted"
