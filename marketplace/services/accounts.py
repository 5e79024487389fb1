"""Accounts: sign-up, profile edits and API tokens."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from marketplace.errors import Conflict, InvalidInput
from marketplace.models import User


def user_signup(*, username: str, email: str, password: str, organisation: str = "") -> tuple[User, Token]:
    """A new account (what the sign-up page does) and its API token. Usernames are unique
    regardless of case; the password must pass the configured validators."""
    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("A user with that username already exists.", code="username_taken")
    try:
        validate_password(password, user=User(username=username, email=email))
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password") from exc
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username, email=email.strip(), password=password, organisation=organisation.strip()[:200]
            )
            token = Token.objects.create(user=user)
    except IntegrityError as exc:  # the same name registered a moment ago
        raise Conflict("A user with that username already exists.", code="username_taken") from exc
    return user, token


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
