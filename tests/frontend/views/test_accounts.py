"""Sign-up, log-in and the profile page (``frontend/views/accounts.py``), through Django's test client."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from tests.frontend.support import client_as, text

pytestmark = pytest.mark.django_db


def test_signup_logs_in_and_profile_shows_organisation():
    client = Client()
    assert client.get(reverse("frontend:signup")).status_code == 200
    response = client.post(
        reverse("frontend:signup"),
        {
            "username": "newprovider",
            "email": "new@example.org",
            "organisation": "St Elsewhere Hospital",
            "password1": "a sturdy passphrase 42",
            "password2": "a sturdy passphrase 42",
        },
    )
    assert response.status_code == 302
    profile = text(client.get(reverse("frontend:profile")))
    assert "St Elsewhere Hospital" in profile and "newprovider" in profile


def test_signup_rejects_mismatched_passwords():
    response = Client().post(
        reverse("frontend:signup"),
        {
            "username": "x",
            "email": "x@example.org",
            "password1": "a sturdy passphrase 42",
            "password2": "other 42",
        },
    )
    assert response.status_code == 400
    assert "password fields didn’t match" in text(response)


def test_login_and_logout_through_the_forms(provider):
    client = Client()
    response = client.post(
        reverse("frontend:login"), {"username": "provider", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert "Log out" in text(client.get("/"))
    assert client.get(reverse("frontend:logout")).status_code == 405  # logging out is a POST
    client.post(reverse("frontend:logout"))
    assert "Log in" in text(client.get("/"))
    bad = client.post(reverse("frontend:login"), {"username": "provider", "password": "wrong"})
    assert bad.status_code == 200 and "Please enter a correct username and password" in text(bad)


def test_profile_edit_and_api_token_regeneration(provider):
    client = client_as(provider)
    response = client.post(
        reverse("frontend:profile"), {"email": "p@example.org", "organisation": "Acme Health", "bio": "Hi"}
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.organisation == "Acme Health"
    assert "You have no API token yet." in text(client.get(reverse("frontend:profile")))
    client.post(reverse("frontend:token-regenerate"))
    first = Token.objects.get(user=provider).key
    assert first in text(client.get(reverse("frontend:profile")))
    client.post(reverse("frontend:token-regenerate"))
    second = Token.objects.get(user=provider).key
    assert second != first and second in text(client.get(reverse("frontend:profile")))
