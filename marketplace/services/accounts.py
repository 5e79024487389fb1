"""Accounts: profile edits and API tokens."""

from __future__ import annotations

from django.db import transaction
from rest_framework.authtoken.models import Token

from marketplace.models import User


def user_profile_update(*, user: User, email: str, organisation: str, bio: str) -> User:
    user.email = email.strip()
    user.organisation = organisation.strip()[:200]
    user.bio = bio.strip()[:2000]
    user.save(update_fields=["email", "organisation", "bio"])
    return user


def api_token_regenerate(*, user: User) -> Token:
    """Replace the user's API token; the old one stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)
