"""Sign-In with Ethereum (EIP-4361): every field of the message is checked, the message is parsed
strictly as signed, and a browser's sign-in passes the CSRF check. Real signatures (eth-account),
no chain node: the configured chain id is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from rest_framework.test import APIClient

from chain import client as chain_client
from chain.models import SiweNonce, Wallet
from chain.services.wallets import siwe_nonce_issue, siwe_parse, siwe_verify
from common.errors import DomainError
from marketplace.models import User

CHAIN = 31337
pytestmark = pytest.mark.django_db


@pytest.fixture
def key():
    return Account.create()


def _sign(account, message: str) -> str:
    return account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()


def _issued(account) -> dict:
    return siwe_nonce_issue(user=None, chain_id=CHAIN, address=account.address)


def _refused(message: str, signature: str) -> str:
    with pytest.raises(DomainError) as caught:
        siwe_verify(message=message, signature=signature, chain_id=CHAIN)
    return caught.value.code


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_issued_message_signed_by_its_key_is_accepted_once(key, settings):
    issued = _issued(key)
    message = issued["message"]
    assert message.startswith("127.0.0.1:8000 wants you to sign in with your Ethereum account:\n" + key.address)
    assert f"\nURI: {settings.SITE_URL}/\n" in message and f"\nChain ID: {CHAIN}\n" in message
    signature = _sign(key, message)
    parsed = siwe_verify(message=message, signature=signature, chain_id=CHAIN)
    assert parsed.address == key.address and parsed.nonce == issued["nonce"]
    assert SiweNonce.objects.get(nonce=issued["nonce"]).used_at is not None
    assert _refused(message, signature) == "siwe_nonce_used"


def test_domain_and_uri_are_the_site_s_not_the_request_s(key, settings):
    settings.SITE_URL = "https://data.example.org"
    issued = _issued(key)
    assert issued["domain"] == "data.example.org" and issued["uri"] == "https://data.example.org/"
    message = issued["message"]
    for forged, code in [
        (message.replace("data.example.org wants", "evil.example wants", 1), "siwe_wrong_domain"),
        (message.replace("data.example.org wants", "data.example.org:444 wants", 1), "siwe_wrong_domain"),
        (message.replace("data.example.org wants", "http://data.example.org wants", 1), "siwe_wrong_domain"),
        (message.replace("URI: https://data.example.org/", "URI: https://evil.example/", 1), "siwe_wrong_uri"),
        (message.replace("URI: https://data.example.org/", "URI: http://data.example.org/", 1), "siwe_wrong_uri"),
    ]:
        assert forged != message
        assert _refused(forged, _sign(key, forged)) == code, forged
    # The explicit scheme the grammar allows is accepted when it is the site's.
    with_scheme = message.replace("data.example.org wants", "https://data.example.org wants", 1)
    assert siwe_verify(message=with_scheme, signature=_sign(key, with_scheme), chain_id=CHAIN).address == key.address


def test_another_chain_is_refused(key):
    message = _issued(key)["message"].replace(f"Chain ID: {CHAIN}", "Chain ID: 1", 1)
    assert _refused(message, _sign(key, message)) == "siwe_wrong_chain"


def test_an_unknown_nonce_is_refused(key):
    message = _issued(key)["message"]
    nonce = SiweNonce.objects.get().nonce
    forged = message.replace(nonce, "a" * 24, 1)
    assert _refused(forged, _sign(key, forged)) == "siwe_bad_nonce"


def test_an_expired_nonce_is_refused_even_if_the_message_says_otherwise(key):
    issued = _issued(key)
    SiweNonce.objects.filter(nonce=issued["nonce"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    later = _iso(timezone.now() + timedelta(hours=1))
    message = issued["message"].replace(issued["expiration_time"], later, 1)
    assert _refused(message, _sign(key, message)) == "siwe_expired"


def test_a_passed_expiration_time_is_refused(key):
    issued = _issued(key)
    message = issued["message"].replace(issued["expiration_time"], _iso(timezone.now() - timedelta(seconds=5)), 1)
    assert _refused(message, _sign(key, message)) == "siwe_expired"


def test_an_issued_at_in_the_future_is_refused(key):
    issued = _issued(key)
    message = issued["message"].replace(issued["issued_at"], _iso(timezone.now() + timedelta(minutes=5)), 1)
    assert _refused(message, _sign(key, message)) == "siwe_issued_in_future"


def test_an_issued_at_before_the_nonce_existed_is_refused(key):
    issued = _issued(key)
    message = issued["message"].replace(issued["issued_at"], _iso(timezone.now() - timedelta(days=1)), 1)
    assert _refused(message, _sign(key, message)) == "siwe_bad_nonce"


def test_a_future_not_before_is_refused(key):
    issued = _issued(key)
    message = issued["message"] + f"\nNot Before: {_iso(timezone.now() + timedelta(minutes=5))}"
    assert _refused(message, _sign(key, message)) == "siwe_not_yet_valid"


def test_a_signature_by_another_key_or_a_garbled_one_is_refused(key):
    message = _issued(key)["message"]
    assert _refused(message, _sign(Account.create(), message)) == "siwe_bad_signature"
    assert _refused(message, "0x1234") == "siwe_bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.replace("\n", "\r\n"),
        lambda m: m + "\n",
        lambda m: " " + m,
        lambda m: m.replace("Version: 1", "Version: 2", 1),
        lambda m: m.replace("Nonce: ", "Nonce: !", 1),
        lambda m: m + "\nSomething Else: yes",
        lambda m: m.replace("T", "t", 1),
        lambda m: m.split("\nIssued At: ")[0] + "\nIssued At: 2026-13-45T00:00:00Z",
    ],
    ids=["crlf", "trailing-newline", "leading-space", "version-2", "nonce-chars", "extra-field", "time", "date"],
)
def test_a_message_outside_the_grammar_is_refused(key, change):
    message = change(_issued(key)["message"])
    assert _refused(message, _sign(key, message)) == "siwe_malformed"


def test_an_address_without_its_eip55_checksum_is_refused(key):
    message = _issued(key)["message"].replace(key.address, key.address.lower(), 1)
    assert _refused(message, _sign(key, message)) == "siwe_malformed"


def test_the_parser_reads_the_optional_fields(key):
    message = _issued(key)["message"] + "\nRequest ID: abc-1\nResources:\n- https://data.example.org/a\n- ipfs://bafy"
    parsed = siwe_parse(message)
    assert parsed.statement.startswith("Sign in to") and parsed.chain_id == CHAIN and parsed.expiration_time


# --- through the API: CSRF and sessions ---------------------------------------------------------------


@pytest.fixture
def on_a_chain(monkeypatch):
    monkeypatch.setattr(chain_client, "chain_id", lambda: CHAIN)


def _verify_payload(api: APIClient, account) -> dict:
    nonce = api.post("/api/v1/auth/siwe/nonce/", {"address": account.address}, format="json").json()
    return {"message": nonce["message"], "signature": _sign(account, nonce["message"]), "create_account": True}


def test_a_browser_signing_in_must_pass_the_csrf_check(key, on_a_chain):
    browser = APIClient(enforce_csrf_checks=True)
    page = browser.get("/login/")  # sets the csrftoken cookie, as the page the button is on does
    assert page.status_code == 200
    payload = _verify_payload(browser, key)
    # A cross-site form post carries the cookie but cannot know the token.
    forged = browser.post("/api/v1/auth/siwe/verify/", payload, format="json")
    assert forged.status_code == 403 and forged.json()["code"] == "csrf_failed"
    assert "_auth_user_id" not in browser.session
    assert not User.objects.filter(username__startswith="wallet-").exists()
    # With the token from the cookie (what the page's script sends) the sign-in works: a session.
    payload = _verify_payload(browser, key)
    token = browser.cookies["csrftoken"].value
    answer = browser.post("/api/v1/auth/siwe/verify/", payload, format="json", HTTP_X_CSRFTOKEN=token)
    assert answer.status_code == 200, answer.content
    assert answer.json()["username"].startswith("wallet-") and browser.session.get("_auth_user_id")
    assert Wallet.objects.filter(address=key.address, kind=Wallet.Kind.EXTERNAL).exists()


def test_a_client_without_cookies_gets_a_token_and_no_session(key, on_a_chain):
    api = APIClient(enforce_csrf_checks=True)
    answer = api.post("/api/v1/auth/siwe/verify/", _verify_payload(api, key), format="json")
    assert answer.status_code == 200 and answer.json()["token"]
    assert "sessionid" not in answer.cookies
    me = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {answer.json()['token']}")
    assert me.status_code == 200 and me.json()["username"] == answer.json()["username"]
