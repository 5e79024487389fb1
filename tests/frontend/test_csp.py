"""Content-Security-Policy (django-csp) on every page: scripts only from our own files, so a
script injected into a page (an XSS) does not run. The pages themselves carry no inline script,
no event-handler attribute and no <style> element the policy would block."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import UserFactory, make_dataset

pytestmark = pytest.mark.django_db

# An inline script the browser would run; json_script's data blocks (type="application/json") are
# not run, and the policy leaves them alone.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>", re.I)
HANDLER_ATTRIBUTE = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
STYLE_ELEMENT = re.compile(r"<style[\s>]", re.I)


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def _check(client: Client, url: str, *, styles_allowed: bool = False) -> str:
    response = client.get(url)
    assert response.status_code in (200, 404), (url, response.status_code)
    policy = _policy(response)
    assert policy["script-src"] == ["'self'"], url
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], url
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"], url
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html), (url, INLINE_SCRIPT.search(html).group(0))
    assert not HANDLER_ATTRIBUTE.search(html), (url, HANDLER_ATTRIBUTE.search(html).group(0))
    assert "javascript:" not in html.lower(), url
    if not styles_allowed:
        assert policy["style-src"] == ["'self'"], url
        assert not STYLE_ELEMENT.search(html), url
    return html


def test_every_page_has_a_strict_script_policy_and_no_inline_script(provider, staff):
    listed = make_dataset(owner=provider, status="listed", moderator=staff)
    visitor, member, moderator = Client(), Client(), Client()
    member.force_login(provider)
    moderator.force_login(staff)
    for url in ["/", "/?q=blood", "/login/", "/signup/", "/password/reset/", f"/datasets/{listed.pk}/", "/nowhere/"]:
        _check(visitor, url)
    for url in [
        "/me/",
        "/me/password/",
        "/me/datasets/",
        "/me/dashboard/",
        "/me/jobs/",
        "/me/orders/",
        "/datasets/new/",
        f"/datasets/{listed.pk}/",
        f"/datasets/{listed.pk}/ledger/",
    ]:
        _check(member, url)
    for url in ["/moderation/", "/moderation/log/"]:
        _check(moderator, url)


def test_the_admin_runs_under_the_same_policy(provider):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    admin = Client()
    assert "csrfmiddlewaretoken" in _check(admin, "/admin/login/")
    admin.force_login(root)
    for url in [
        "/admin/",
        "/admin/marketplace/user/",
        f"/admin/marketplace/user/{provider.pk}/change/",
        "/admin/marketplace/dataset/",
        "/admin/authtoken/tokenproxy/",
    ]:
        _check(admin, url)


def test_the_api_docs_load_their_start_up_script_as_a_file():
    html = _check(Client(), "/api/docs/", styles_allowed=True)
    assert '<script src="/api/docs/?script' in html
    script = Client().get("/api/docs/?script")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content
    # Only the docs page allows inline styles (Swagger UI's own <style>); scripts stay strict.
    assert _policy(Client().get("/api/docs/"))["style-src"] == ["'self'", "'unsafe-inline'"]


def test_an_injected_script_would_not_run_because_api_answers_carry_the_policy_too():
    response = Client().get("/api/v1/datasets/")
    assert _policy(response)["script-src"] == ["'self'"]
