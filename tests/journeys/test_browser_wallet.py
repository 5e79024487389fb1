"""Self-custody in a real Chromium: an injected EIP-1193 provider plays MetaMask. Its key lives in
this test process (eth-account); the page's requests reach it through ``expose_function``: it
answers accounts, chain id and signatures itself, signs ``eth_sendTransaction`` locally and sends
it raw to the test anvil, and forwards read-only calls to anvil. It also announces itself over
EIP-6963. The journeys: sign in with Ethereum as a brand-new user, pay for a compute job from the
browser wallet (one transaction) and see it finish; a rejected signature orders nothing; no wallet,
and a wallet on the wrong chain, get clear messages and a way out."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hexbytes import HexBytes
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from web3 import Web3

from chain.faucet import fund_address
from chain.models import Order, Wallet
from chain.wrappers import MockStablecoin
from compute_to_data.models import ComputeJob
from marketplace.models import User
from tests.browser_support import DESKTOP, log_in, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.chain,
    pytest.mark.django_db(transaction=True),
]

USDC = 10**6
REJECTED = {"code": 4001, "message": "User rejected the request."}

# window.ethereum (EIP-1193) and an EIP-6963 announcement, both forwarding to window.__walletRpc.
PROVIDER_JS = """
(() => {
  const listeners = {};
  const provider = {
    isMetaMask: true,
    async request(args) {
      const answer = JSON.parse(await window.__walletRpc(JSON.stringify({
        method: args.method, params: args.params || [],
      })));
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        throw error;
      }
      if (args.method === "wallet_switchEthereumChain" || args.method === "wallet_addEthereumChain") {
        (listeners.chainChanged || []).forEach((fn) => fn(answer.chainId));
      }
      return answer.result;
    },
    on(event, fn) { (listeners[event] = listeners[event] || []).push(fn); return provider; },
    removeListener(event, fn) {
      listeners[event] = (listeners[event] || []).filter((f) => f !== fn); return provider;
    },
  };
  window.ethereum = provider;
  const info = Object.freeze({
    uuid: "6f1c2a8e-1f0b-4c55-9d3e-3c7e2b9a0d41", name: "Test wallet", rdns: "org.example.testwallet",
    icon: "data:image/svg+xml;base64,PHN2Zy8+",
  });
  const announce = () => window.dispatchEvent(
    new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
"""


class TestWallet:
    """The wallet's side, in Python: a fresh key, the chain it is on, requests to refuse."""

    __test__ = False

    def __init__(self, w3, *, chain_id: int | None = None) -> None:
        self.w3 = w3
        self.account = Account.create()
        self.chain_id = chain_id or w3.eth.chain_id
        self.connected = False
        self.reject: set[str] = set()
        self.unknown_chains = False  # wallet_switchEthereumChain answers 4902 until the chain is added
        self.calls: list[str] = []
        self.sent: list[str] = []
        self.errors: list[str] = []

    @property
    def address(self) -> str:
        return self.account.address

    def install(self, context) -> None:
        context.expose_function("__walletRpc", self.handle)
        context.add_init_script(PROVIDER_JS)

    def handle(self, payload: str) -> str:
        request = json.loads(payload)
        method, params = request["method"], request.get("params") or []
        self.calls.append(method)
        if method in self.reject:
            return json.dumps({"error": REJECTED})
        try:
            return json.dumps({"result": self._answer(method, params), "chainId": hex(self.chain_id)})
        except WalletRpcError as exc:
            return json.dumps({"error": {"code": exc.code, "message": str(exc)}})
        except Exception as exc:  # an internal error, as a wallet reports one (and the test shows it)
            self.errors.append(f"{method}: {exc!r}")
            return json.dumps({"error": {"code": -32603, "message": f"Internal error: {exc}"}})

    def _answer(self, method: str, params: list):
        if method == "eth_requestAccounts":
            self.connected = True
            return [self.address]
        if method == "eth_accounts":
            return [self.address] if self.connected else []
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "net_version":
            return str(self.chain_id)
        if method == "personal_sign":
            data, address = params[0], params[1]
            assert address.lower() == self.address.lower()
            message = HexBytes(data) if data.startswith("0x") else data.encode()
            return self.account.sign_message(encode_defunct(primitive=bytes(message))).signature.to_0x_hex()
        if method == "eth_signTypedData_v4":
            address, typed = params[0], json.loads(params[1])
            assert address.lower() == self.address.lower()
            return self.account.sign_typed_data(full_message=typed).signature.to_0x_hex()
        if method == "eth_sendTransaction":
            return self._send(params[0])
        if method == "wallet_switchEthereumChain":
            wanted = int(params[0]["chainId"], 16)
            if self.unknown_chains:
                raise WalletRpcError(4902, f"Unrecognized chain ID {wanted}.")
            self.chain_id = wanted
            return None
        if method == "wallet_addEthereumChain":
            assert params[0]["rpcUrls"], "the page gives the chain's RPC URL"
            self.unknown_chains = False
            self.chain_id = int(params[0]["chainId"], 16)
            return None
        if self.chain_id != self.w3.eth.chain_id:
            raise WalletRpcError(4901, "The wallet is not connected to that chain.")
        answer = self.w3.provider.make_request(method, params)  # read-only calls go to the node
        if "error" in answer:
            raise WalletRpcError(answer["error"].get("code", -32000), answer["error"].get("message", "error"))
        return answer["result"]

    def _send(self, tx: dict) -> str:
        """What MetaMask does on "Confirm": fill in nonce and fees, sign, broadcast."""
        assert tx["from"].lower() == self.address.lower()
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)
        priority = int(self.w3.eth.max_priority_fee)
        signed = self.account.sign_transaction(
            {
                "chainId": self.chain_id,
                "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
                "to": Web3.to_checksum_address(tx["to"]),
                "data": tx.get("data", "0x"),
                "value": int(tx.get("value", "0x0"), 16),
                "gas": int(tx["gas"], 16) if "gas" in tx else int(tx["gasLimit"], 16),
                "maxFeePerGas": 2 * base_fee + priority,
                "maxPriorityFeePerGas": priority,
            }
        )
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()
        self.sent.append(tx_hash)
        return tx_hash


class WalletRpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _choose_statistics(page, epsilon: str) -> None:
    page.get_by_role("radio", name=re.compile("^DP summary statistics")).check()
    page.get_by_role("heading", name=re.compile("^Parameters of DP summary statistics")).wait_for()
    page.locator("#job-params").get_by_label(re.compile(r"^Epsilon")).fill(epsilon)


def test_sign_in_with_ethereum_then_pay_for_a_job_from_the_browser_wallet(stack, browser):
    base = stack.url
    w3 = stack.chain.w3
    dataset = stack.listed(title="Cardiology outpatients", price="3", epsilon_total="10", per_job="2")
    wallet = TestWallet(w3)
    fund_address(w3, stack.chain.deployment, wallet.address)
    usdc = MockStablecoin(w3, stack.chain.deployment["contracts"]["MockStablecoin"])
    before = usdc.balance_of(wallet.address)

    context = browser.new_context(viewport=DESKTOP)
    wallet.install(context)
    page = context.new_page()

    # --- sign in with Ethereum: a wallet we have never seen becomes a new account ----------------
    page.goto(f"{base}/login/?next=/datasets/{dataset.pk}/")
    shot(page, "login-siwe")
    page.get_by_role("button", name="Sign in with Ethereum").click()
    page.wait_for_url(f"{base}/datasets/{dataset.pk}/")
    user = User.objects.get(wallets__address=wallet.address)
    assert user.username.startswith("wallet-") and not user.has_usable_password()
    assert page.get_by_role("link", name=user.username).is_visible()
    assert wallet.calls.index("eth_requestAccounts") < wallet.calls.index("personal_sign")

    # --- a rejected permit signature orders nothing and says so ----------------------------------
    _choose_statistics(page, "0.5")
    pay = page.get_by_role("button", name="Pay with my browser wallet")
    status = page.locator("#wallet-pay-progress")
    wallet.reject = {"eth_signTypedData_v4"}
    pay.click()
    status.get_by_role("alert").wait_for()
    assert "You rejected the request in your wallet" in status.inner_text()
    assert "nothing was signed, sent or paid" in status.inner_text()
    assert "eth_sendTransaction" not in wallet.calls
    assert not Order.objects.exists() and not ComputeJob.objects.exists()
    assert usdc.balance_of(wallet.address) == before
    shot(page, "wallet-pay-rejected")

    # --- pay with the browser wallet: permit signed, one transaction sent by the wallet ----------
    wallet.reject = set()
    pay.click()
    try:
        page.wait_for_url(re.compile(rf"{re.escape(base)}/jobs/\d+/"), timeout=60_000)
    except PlaywrightTimeout:
        raise AssertionError(f"no job page; the form says: {status.inner_text()!r}; wallet: {wallet.errors}") from None
    job = ComputeJob.objects.get(buyer=user)
    assert len(wallet.sent) == 1, "one transaction pays and orders"
    order = job.order
    assert order.source == Order.Source.EXTERNAL and order.tx_hash == wallet.sent[0].lower()
    stack.wait_for(lambda: ComputeJob.objects.get(pk=job.pk).status in ComputeJob.TERMINAL, timeout=180)
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.FINISHED, (job.status, job.reason)
    order.refresh_from_db()
    assert order.consumer_address == wallet.address and order.epsilon == Decimal("0.5")
    assert usdc.balance_of(wallet.address) == before - 3 * USDC
    page.get_by_role("link", name="See the results").wait_for(timeout=60_000)  # the job page follows it live
    assert "Finished" in page.locator("#job-status").inner_text()
    shot(page, "wallet-job-finished")
    methods = [m for m in wallet.calls if m in ("personal_sign", "eth_signTypedData_v4", "eth_sendTransaction")]
    assert methods == ["personal_sign", "eth_signTypedData_v4", "eth_signTypedData_v4", "eth_sendTransaction"]
    context.close()


def test_no_wallet_and_wrong_chain_get_clear_messages_and_linking_works_after_switching(
    live_server, people, on_chain, browser
):
    base = live_server.url
    provider, buyer, staff = people

    # No injected wallet at all.
    bare = browser.new_context(viewport=DESKTOP)
    page = bare.new_page()
    page.goto(f"{base}/login/")
    page.get_by_role("button", name="Sign in with Ethereum").click()
    alert = page.locator("#siwe-progress").get_by_role("alert")
    alert.wait_for()
    assert "No browser wallet found" in alert.inner_text() and "MetaMask" in alert.inner_text()
    bare.close()

    # A wallet on another chain, which does not know ours yet: switch fails with 4902, so the page
    # adds the chain (with the RPC URL from GET /api/v1/chain/) and goes on to link the wallet.
    wallet = TestWallet(on_chain.w3, chain_id=1)
    wallet.unknown_chains = True
    context = browser.new_context(viewport=DESKTOP)
    wallet.install(context)
    page = context.new_page()
    log_in(page, base, buyer.username)
    page.goto(f"{base}/me/#wallets")
    page.get_by_role("button", name="Connect browser wallet").click()
    status = page.locator("#wallet-link-progress")
    status.get_by_role("alert").wait_for()
    assert "wrong network (chain 1)" in status.inner_text() and "chain 31337" in status.inner_text()
    assert "personal_sign" not in wallet.calls
    status.get_by_role("button", name="Switch network").click()
    status.get_by_text(f"Linked {wallet.address}").wait_for()
    assert wallet.calls.count("wallet_switchEthereumChain") == 1 and "wallet_addEthereumChain" in wallet.calls
    linked = Wallet.objects.get(address=wallet.address)
    assert linked.user == buyer and linked.kind == "external" and linked.verified_at is not None
    page.get_by_role("table", name="Your wallets and their balances").get_by_text(wallet.address).wait_for()
    shot(page, "wallet-linked")

    # A rejected sign-in message leaves the user signed out, with a message.
    other = browser.new_context(viewport=DESKTOP)
    stranger = TestWallet(on_chain.w3)
    stranger.reject = {"personal_sign"}
    stranger.install(other)
    page = other.new_page()
    page.goto(f"{base}/login/")
    page.get_by_role("button", name="Sign in with Ethereum").click()
    page.locator("#siwe-progress").get_by_role("alert").wait_for()
    assert "You rejected the request" in page.locator("#siwe-progress").inner_text()
    assert not Wallet.objects.filter(address=stranger.address).exists()
    assert page.get_by_role("link", name="Log in").is_visible()
    other.close()
    context.close()
