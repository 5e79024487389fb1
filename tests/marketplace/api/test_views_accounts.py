"""The profile page's actions over the API: who am I, edit my profile, replace my API token."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _with_token(user) -> tuple[APIClient, str]:
    key = Token.objects.create(user=user).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, key


def test_me_shows_and_edits_my_profile(buyer):
    client, _ = _with_token(buyer)
    me = client.get("/api/v1/me/").json()
    assert (me["username"], me["email"], me["is_staff"]) == ("buyer", "buyer@example.org", False)

    response = client.patch("/api/v1/me/", {"organisation": "Startup Ltd"}, format="json")
    assert response.status_code == 200
    assert response.json()["organisation"] == "Startup Ltd"
    assert response.json()["email"] == "buyer@example.org"  # fields left out keep their value

    response = client.patch("/api/v1/me/", {"email": "not an address"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_me_needs_a_signed_in_caller(api):
    assert api.get("/api/v1/me/").status_code == 401


def test_regenerating_the_token_retires_the_old_one(buyer):
    client, old = _with_token(buyer)
    response = client.post("/api/v1/auth/token/regenerate/")
    assert response.status_code == 200
    new = response.json()["token"]
    assert new != old and response.json()["username"] == "buyer"
    assert client.get("/api/v1/me/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert client.get("/api/v1/me/").json()["username"] == "buyer"


def test_signing_up_over_the_api_gives_a_working_token_and_the_password_logs_in(api):
    response = api.post(
        "/api/v1/auth/signup/",
        {"username": "acme-ml", "email": "ml@acme.example", "password": "a long and unusual passphrase"},
        format="json",
    )
    assert response.status_code == 201, response.content
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/me/").json()["username"] == "acme-ml"
    login = api.post("/api/v1/auth/token/", {"username": "acme-ml", "password": "a long and unusual passphrase"})
    assert login.json()["token"] == token


def test_sign_up_refuses_a_taken_name_in_any_case_and_a_weak_password(api, buyer):
    taken = api.post(
        "/api/v1/auth/signup/",
        {"username": "BUYER", "email": "b@example.org", "password": "a long and unusual passphrase"},
        format="json",
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "username_taken")
    weak = api.post(
        "/api/v1/auth/signup/", {"username": "newbie", "email": "n@example.org", "password": "123"}, format="json"
    )
    assert (weak.status_code, weak.json()["code"]) == (400, "weak_password")
    assert "too short" in weak.json()["detail"]
    bad_name = api.post(
        "/api/v1/auth/signup/",
        {"username": "no spaces allowed", "email": "n@example.org", "password": "a long and unusual passphrase"},
        format="json",
    )
    assert bad_name.status_code == 400 and "username" in bad_name.json().get("errors", bad_name.json())
