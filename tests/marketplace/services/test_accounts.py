"""Accounts under attack: log-in throttling (django-axes) on the page and the token API, shared by
separate server processes; password change and reset by e-mail; e-mail confirmation on sign-up;
API token keys never shown in full in the admin."""

from __future__ import annotations

import http.client
import json
import re
import secrets
import uuid
from urllib.parse import urlencode

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core import mail
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from marketplace.models import Dataset, User
from tests.factories import UserFactory
from tests.gunicorn_support import free_port, gunicorn_servers, production_env, status_of

PASSWORD = "correct horse battery staple"
TOKEN_URL = "/api/v1/auth/token/"

pytestmark = pytest.mark.django_db


def _token(client: APIClient, username: str, password: str, address: str = "127.0.0.1", **headers):
    return client.post(TOKEN_URL, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


# --- throttling: the token API ----------------------------------------------------------------


def test_the_token_api_locks_an_account_after_five_failures_from_any_addresses():
    UserFactory(username="alice")
    UserFactory(username="bob")
    api = APIClient()
    # Five guesses at alice's password, each from another address, and in other letter cases.
    for n, name in enumerate(["alice", "Alice", "ALICE", "alice", " alice"]):
        answer = _token(api, name, f"guess-{n}", address=f"10.0.0.{n + 1}")
        assert answer.status_code == (429 if n == 4 else 400), answer.content
    # Now even her right password is refused, from a fresh address, with a clear JSON 429.
    locked = _token(api, "alice", PASSWORD, address="10.9.9.9")
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "login_locked" and "Try again in 15 minutes" in body["detail"]
    assert body["retry_after_seconds"] == 900 and locked["Retry-After"] == "900"
    # Another account from that same address is not affected.
    assert _token(api, "bob", PASSWORD, address="10.9.9.9").status_code == 200


def test_the_token_api_locks_an_address_that_guesses_at_many_accounts():
    UserFactory(username="carol")
    api = APIClient()
    for n in range(5):
        assert _token(api, f"victim{n}", "guess", address="203.0.113.7").status_code in (400, 429)
    refused = _token(api, "carol", PASSWORD, address="203.0.113.7")
    assert refused.status_code == 429 and refused.json()["code"] == "login_locked"
    # Carol herself, from her own address, still signs in: the lock is on the address.
    assert _token(api, "carol", PASSWORD, address="198.51.100.1").status_code == 200


def test_a_forged_x_forwarded_for_does_not_escape_the_address_lock():
    """Without DJANGO_TRUST_PROXY the header is anyone's to write, so it must not pick the address."""
    UserFactory(username="dave")
    api = APIClient()
    for n in range(5):
        _token(api, f"victim{n}", "guess", address="203.0.113.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    answer = _token(api, "dave", PASSWORD, address="203.0.113.9", HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert answer.status_code == 429


def test_behind_a_trusted_proxy_the_last_forwarded_hop_is_the_address(settings):
    settings.TRUST_PROXY = True
    UserFactory(username="erin")
    api = APIClient()
    proxy = "10.1.1.1"  # every request arrives from the proxy
    for n in range(5):
        # The client prepends whatever it likes; the proxy appends the address it saw.
        _token(api, f"victim{n}", "guess", address=proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.50")
    assert _token(api, "erin", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.50").status_code == 429
    assert _token(api, "erin", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 200


def test_over_long_or_odd_credentials_and_headers_are_a_clear_answer_not_a_500(settings):
    api = APIClient()
    too_long = _token(api, "a" * 5000, "x" * 5000)
    assert too_long.status_code == 400 and too_long.json()["code"] == "invalid"
    assert Client().post("/login/", {"username": "b" * 5000, "password": "y"}).status_code == 200
    settings.TRUST_PROXY = True
    odd = _token(api, "c" * 150, "y", address="10.4.4.4", HTTP_X_FORWARDED_FOR="not-an-address")
    assert odd.status_code == 400 and odd.json()["code"] == "invalid_credentials"


def test_an_attacker_s_own_successful_log_ins_do_not_reset_the_address_s_count():
    UserFactory(username="frank")
    api = APIClient()
    for n in range(4):
        assert _token(api, f"victim{n}", "guess", address="203.0.113.20").status_code == 400
        assert _token(api, "frank", PASSWORD, address="203.0.113.20").status_code == 200
    assert _token(api, "victim9", "guess", address="203.0.113.20").status_code == 429


# --- throttling: the log-in page -----------------------------------------------------------------


def test_the_login_page_pauses_after_five_failures_and_points_to_the_reset():
    UserFactory(username="grace")
    client = Client()
    for n in range(4):
        page = client.post("/login/", {"username": "grace", "password": f"guess-{n}"})
        assert page.status_code == 200 and "Please enter a correct username and password" in page.content.decode()
    fifth = client.post("/login/", {"username": "grace", "password": "guess-5"})
    assert fifth.status_code == 429
    right = client.post("/login/", {"username": "grace", "password": PASSWORD})
    text = right.content.decode()
    assert right.status_code == 429 and "Log-in paused" in text and "Try again in 15 minutes" in text
    assert 'href="/password/reset/"' in text
    assert "_auth_user_id" not in client.session
    # The API refuses the same account too: one counter for the page and the API.
    assert _token(APIClient(), "grace", PASSWORD, address="10.2.2.2").status_code == 429


def test_the_login_page_links_to_the_password_reset():
    page = Client().get("/login/").content.decode()
    assert 'href="/password/reset/"' in page and "Forgot your password?" in page


# --- throttling across processes: two gunicorn servers on one database ------------------------


def _post(port: int, path: str, fields: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    status, body = response.status, response.read()
    conn.close()
    return status, json.loads(body) if body.startswith(b"{") else {}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_gunicorn_servers_share_one_failure_count(tmp_path):
    """Failures counted by one server process lock the account on the other: the count lives in
    PostgreSQL (axes' database handler), not in a process's memory."""
    # The servers run production settings, whose hashers do not include the tests' fast MD5 one.
    user = UserFactory(username="heidi")
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, secrets.token_hex(8), iterations=1000)
    user.save(update_fields=["password"])
    with gunicorn_servers(tmp_path, count=2, env=production_env(tmp_path, LOG_LEVEL="WARNING")) as servers:
        ports = [server.port for server in servers]
        a, b = ports
        status, body = _post(a, TOKEN_URL, {"username": "heidi", "password": PASSWORD})
        assert status == 200 and body["username"] == "heidi"
        statuses = [_post(port, TOKEN_URL, {"username": "heidi", "password": "guess"})[0] for port in (a, b, a, b)]
        assert statuses == [400, 400, 400, 400]
        fifth, body = _post(a, TOKEN_URL, {"username": "heidi", "password": "guess"})
        assert fifth == 429 and body["code"] == "login_locked"
        # Server B saw only two of the failures, and refuses the right password all the same.
        status, body = _post(b, TOKEN_URL, {"username": "heidi", "password": PASSWORD})
        assert status == 429 and body["code"] == "login_locked", body
        status, _ = _post(b, "/login/", {"username": "heidi", "password": PASSWORD})
        assert status in (403, 429)  # the page's form has no CSRF token here; never a log-in
        if connection.vendor == "postgresql":
            # The database drops the servers' kept connections (a restart, a failover): the next
            # request checks its connection first (CONN_HEALTH_CHECKS) and is served, not a 500.
            assert all(status_of(port, "/api/v1/datasets/") == 200 for port in ports)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                assert cursor.fetchone()[0] >= 2
            assert [status_of(port, "/api/v1/datasets/") for port in ports] == [200, 200]


# --- password change and reset ---------------------------------------------------------------


def _link(message) -> str:
    match = re.search(r"https?://\S+", message.body)
    assert match, message.body
    return match.group(0)


def _path(url: str, settings) -> str:
    assert url.startswith(settings.SITE_URL.rstrip("/") + "/"), url
    return url[len(settings.SITE_URL.rstrip("/")) :]


def test_password_reset_by_e_mail_sets_a_new_password_and_lifts_the_lockout(settings):
    user = UserFactory(username="ivan", email="ivan@example.org")
    api = APIClient()
    for _ in range(5):
        _token(api, "ivan", "guess", address=f"10.3.3.{_}")
    assert _token(api, "ivan", PASSWORD, address="10.3.3.9").status_code == 429
    client = Client()
    mail.outbox.clear()
    sent = client.post("/password/reset/", {"email": "IVAN@example.org"})
    assert sent.status_code == 302 and sent["Location"] == "/password/reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ivan@example.org"]
    link = _path(_link(mail.outbox[0]), settings)
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    weak = client.post(set_url, {"new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 400 and "This password is too short" in weak.content.decode()
    done = client.post(
        set_url, {"new_password1": "a new and longer passphrase", "new_password2": "a new and longer passphrase"}
    )
    assert done.status_code == 302 and done["Location"] == "/password/reset/done/"
    user.refresh_from_db()
    assert user.check_password("a new and longer passphrase")
    # The reset lifted the account's lockout; the used link does not work twice.
    assert _token(api, "ivan", "a new and longer passphrase", address="10.3.3.10").status_code == 200
    again = client.get(link, follow=True)
    assert "This link does not work" in again.content.decode()


def test_the_reset_form_cannot_flood_an_inbox():
    UserFactory(username="ivy", email="ivy@example.org")
    client = Client()
    mail.outbox.clear()
    for _ in range(3):
        answer = client.post("/password/reset/", {"email": "ivy@example.org"})
        assert answer.status_code == 302 and answer["Location"] == "/password/reset/sent/"
    assert len(mail.outbox) == 1


def test_password_reset_for_an_unknown_address_looks_the_same_and_sends_nothing():
    mail.outbox.clear()
    answer = Client().post("/password/reset/", {"email": "nobody@example.org"})
    assert answer.status_code == 302 and answer["Location"] == "/password/reset/sent/"
    assert mail.outbox == []


def test_password_change_needs_the_old_password_and_keeps_the_session():
    user = UserFactory(username="judy")
    client = Client()
    client.force_login(user)
    assert "Change your password" in client.get("/me/").content.decode()
    wrong = client.post(
        "/me/password/",
        {"old_password": "nope", "new_password1": "brand new phrase 42", "new_password2": "brand new phrase 42"},
    )
    assert wrong.status_code == 400 and "Your old password was entered incorrectly" in wrong.content.decode()
    right = client.post(
        "/me/password/",
        {"old_password": PASSWORD, "new_password1": "brand new phrase 42", "new_password2": "brand new phrase 42"},
    )
    assert right.status_code == 302 and right["Location"] == "/me/"
    assert "Password changed" in client.get("/me/").content.decode()
    user.refresh_from_db()
    assert user.check_password("brand new phrase 42")


def test_a_wallet_account_sets_a_password_without_an_old_one():
    user = UserFactory(username="wallet-abcdef12", password=None)
    user.set_unusable_password()
    user.save()
    client = Client()
    client.force_login(user)
    page = client.get("/me/password/").content.decode()
    assert "Set a password" in page and "old_password" not in page
    answer = client.post(
        "/me/password/", {"new_password1": "wallet owner phrase 7", "new_password2": "wallet owner phrase 7"}
    )
    assert answer.status_code == 302
    user.refresh_from_db()
    assert user.check_password("wallet owner phrase 7")


def test_password_pages_need_a_signed_in_user():
    answer = Client().get("/me/password/")
    assert answer.status_code == 302 and answer["Location"].startswith("/login/?next=")


# --- e-mail confirmation ------------------------------------------------------------------------


def _draft_of(user: User) -> Dataset:
    return Dataset.objects.create(
        owner=user,
        title="Draft",
        file_format="csv",
        original_filename="d.csv",
        storage_name=f"t/{uuid.uuid4().hex}",
        file_size=10,
        file_sha256="0" * 64,
    )


def test_sign_up_sends_a_confirmation_link_and_submitting_waits_for_it(settings):
    client = Client()
    mail.outbox.clear()
    answer = client.post(
        "/signup/",
        {
            "username": "kim",
            "email": "kim@example.org",
            "password1": "kim's long phrase 9",
            "password2": "kim's long phrase 9",
        },
    )
    assert answer.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["kim@example.org"]
    profile = client.get("/me/").content.decode()
    assert "Not confirmed" in profile and "Send the link again" in profile
    kim = User.objects.get(username="kim")
    assert not kim.email_verified
    draft = _draft_of(kim)
    api = APIClient()
    api.force_authenticate(kim)
    refused = api.post(f"/api/v1/datasets/{draft.pk}/submit/")
    assert refused.status_code == 403 and refused.json()["code"] == "email_unverified"
    assert "Confirm your e-mail address" in refused.json()["detail"]
    assert api.get("/api/v1/me/").json()["email_verified"] is False
    # Following the link (in any browser, signed in or not) confirms the address.
    confirmed = Client().get(_path(_link(mail.outbox[0]), settings))
    assert confirmed.status_code == 302 and confirmed["Location"] == "/login/"
    kim.refresh_from_db()
    assert kim.email_verified
    assert "Confirmed" in client.get("/me/").content.decode()
    # Submitting now gets past the address check to the dataset's own state.
    assert api.post(f"/api/v1/datasets/{draft.pk}/submit/").json()["code"] == "schema_not_declared"
    assert api.get("/api/v1/me/").json()["email_verified"] is True


def test_changing_the_address_needs_a_new_confirmation_and_old_links_stop_working(settings):
    user = UserFactory(username="liam", email="liam@example.org")
    assert user.email_verified
    client = Client()
    client.force_login(user)
    mail.outbox.clear()
    client.post("/me/", {"email": "liam@new.example", "organisation": "", "bio": ""})
    user.refresh_from_db()
    assert user.email == "liam@new.example" and not user.email_verified
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["liam@new.example"]
    first_link = _path(_link(mail.outbox[0]), settings)
    client.post("/me/", {"email": "liam@third.example", "organisation": "", "bio": ""})
    stale = client.get(first_link)
    assert stale.status_code == 400 and "no longer on the account" in stale.content.decode()
    user.refresh_from_db()
    assert not user.email_verified


def test_a_forged_or_garbled_link_is_refused_with_a_message():
    answer = Client().get("/me/email/verify/eyJ1IjoxLCJlIjoiYUBiLmMifQ:1abc:forged/")
    assert answer.status_code == 400 and "not valid" in answer.content.decode()


def test_send_again_mails_at_most_once_in_a_few_minutes():
    user = UserFactory(username="mia", email="mia@example.org", email_verified_at=None)
    client = Client()
    client.force_login(user)
    mail.outbox.clear()
    first = client.post("/me/email/resend/", follow=True)
    assert "We sent a new confirmation link" in first.content.decode()
    second = client.post("/me/email/resend/", follow=True)
    assert "We could not send a link just now" in second.content.decode()
    assert len(mail.outbox) == 1


def test_the_api_sends_the_link_again_once_in_a_few_minutes(settings):
    user = UserFactory(username="nia", email="nia@example.org", email_verified_at=None)
    api = APIClient()
    assert api.post("/api/v1/me/email/resend/").status_code == 401
    api.force_authenticate(user)
    mail.outbox.clear()
    first = api.post("/api/v1/me/email/resend/").json()
    assert first["sent"] is True and first["email_verified"] is False
    assert api.post("/api/v1/me/email/resend/").json()["sent"] is False
    assert len(mail.outbox) == 1
    Client().get(_path(_link(mail.outbox[0]), settings))
    user.refresh_from_db()
    api.force_authenticate(user)
    done = api.post("/api/v1/me/email/resend/").json()
    assert done == {"sent": False, "email_verified": True, "detail": "Your e-mail address is already confirmed."}


def test_a_mail_server_failure_does_not_fail_the_sign_up(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    answer = APIClient().post(
        "/api/v1/auth/signup/",
        {"username": "noah", "email": "noah@example.org", "password": "noah's long phrase 3"},
        format="json",
    )
    assert answer.status_code == 201 and answer.json()["token"]
    assert not User.objects.get(username="noah").email_verified


# --- the admin shows token prefixes only ----------------------------------------------------------


def test_the_admin_never_shows_a_full_api_token():
    owner = UserFactory(username="olivia")
    key = Token.objects.create(user=owner).key
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    listing = client.get("/admin/authtoken/tokenproxy/")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert key[:8] in text and key not in text and "olivia" in text
    assert "0 results" in client.get(f"/admin/authtoken/tokenproxy/?q={key}").content.decode(), "no search by key"
    for url in (
        f"/admin/authtoken/tokenproxy/{owner.pk}/change/",
        f"/admin/authtoken/tokenproxy/{key}/change/",
        f"/admin/authtoken/tokenproxy/{key}/delete/",
        "/admin/authtoken/tokenproxy/add/",
    ):
        assert client.get(url).status_code in (302, 404), url
    user_page = client.get(f"/admin/marketplace/user/{owner.pk}/change/")
    assert user_page.status_code == 200
    assert key[:8] in user_page.content.decode() and key not in user_page.content.decode()
    assert key not in client.get("/admin/").content.decode()
    # Staff revoke a token from the user list.
    revoked = client.post(
        "/admin/marketplace/user/", {"action": "revoke_api_tokens", "_selected_action": [owner.pk]}, follow=True
    )
    assert "Revoked 1 API token(s)" in revoked.content.decode()
    assert not Token.objects.filter(user=owner).exists()
