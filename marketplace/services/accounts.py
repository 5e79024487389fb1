"""Accounts: sign-up, e-mail confirmation, profile edits and API tokens."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from common.errors import Conflict, InvalidInput
from marketplace.models import User
from marketplace.services.notifications import notification_send_once

logger = logging.getLogger(__name__)

EMAIL_VERIFY_SALT = "marketplace.accounts.email-verify"
# One confirmation e-mail per account and address in each window of this many seconds, however
# often "send again" is pressed: the button cannot be used to flood somebody's inbox.
EMAIL_VERIFY_RESEND_SECONDS = 300


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
    email_verification_send(user=user)
    return user, token


def user_profile_update(*, user: User, email: str, organisation: str, bio: str) -> User:
    """Save the profile. A new e-mail address is unconfirmed until its link is followed (one is sent)."""
    email = email.strip()
    # Compared with the stored row: a bound ModelForm may already have written the new address
    # onto ``user``.
    stored = User.objects.filter(pk=user.pk).values_list("email", flat=True).first() or ""
    changed = email.lower() != stored.lower()
    user.email = email
    user.organisation = organisation.strip()[:200]
    user.bio = bio.strip()[:2000]
    if changed:
        user.email_verified_at = None
    user.save(update_fields=["email", "organisation", "bio", "email_verified_at"])
    if changed:
        email_verification_send(user=user)
    return user


def email_verification_token(*, user: User) -> str:
    """A signed, expiring token naming the account and the address it confirms: a link sent to an
    old address stops working once the address changes."""
    return signing.dumps({"u": user.pk, "e": user.email.lower()}, salt=EMAIL_VERIFY_SALT)


def email_verification_send(*, user: User) -> bool:
    """Mail the link that confirms ``user.email``. False when there is nothing to confirm, when a link
    went to this address in the last few minutes, or when the mail server failed (logged; the
    profile's "send again" retries). Never raises: a sign-up must not fail for the mail server."""
    if not user.email or user.email_verified:
        return False
    link = settings.SITE_URL.rstrip("/") + reverse("frontend:email-verify", args=[email_verification_token(user=user)])
    window = int(timezone.now().timestamp()) // EMAIL_VERIFY_RESEND_SECONDS
    message = (
        f"Hello {user.username},\n\n"
        "please confirm that this is your e-mail address for the Privacy Data Exchange by opening this link:\n\n"
        f"{link}\n\n"
        f"The link works for {settings.PASSWORD_RESET_TIMEOUT // 3600} hours. Until the address is confirmed you "
        "can browse, buy and run jobs, but not submit a dataset for review.\n\n"
        "If you did not sign up, ignore this e-mail: nothing happens without the link.\n"
    )
    try:
        return notification_send_once(
            key=f"email-verify:{user.pk}:{window}:{user.email.lower()}",
            subject="Confirm your e-mail address",
            message=message,
            recipients=[user.email],
        )
    except Exception:  # noqa: BLE001 - any mail backend error; the account stays, the link can be resent
        logger.exception("E-mail confirmation for user %s could not be sent", user.pk)
        return False


def password_reset_mail_send(*, user: User, subject: str, message: str) -> bool:
    """Mail a password-reset link, at most one per account in each window of a few minutes, so the
    reset form cannot flood an inbox. Never raises (the form's answer is the same either way, so
    it tells nobody whether the address has an account)."""
    window = int(timezone.now().timestamp()) // EMAIL_VERIFY_RESEND_SECONDS
    try:
        return notification_send_once(
            key=f"password-reset:{user.pk}:{window}", subject=subject, message=message, recipients=[user.email]
        )
    except Exception:  # noqa: BLE001 - any mail backend error
        logger.exception("Password reset e-mail for user %s could not be sent", user.pk)
        return False


def email_verify(*, token: str) -> User:
    """Mark the address a confirmation link names as confirmed (again is harmless)."""
    try:
        data = signing.loads(token, salt=EMAIL_VERIFY_SALT, max_age=settings.PASSWORD_RESET_TIMEOUT)
    except signing.SignatureExpired as exc:
        raise InvalidInput(
            "This confirmation link has expired. Send a new one from your profile.", code="email_link_expired"
        ) from exc
    except signing.BadSignature as exc:
        raise InvalidInput("This confirmation link is not valid.", code="email_link_invalid") from exc
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=data.get("u")).first()
        if user is None or not user.email or user.email.lower() != data.get("e"):
            raise InvalidInput(
                "This link confirms an address that is no longer on the account. Send a new one from your profile.",
                code="email_link_stale",
            )
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
    return user


def api_token_regenerate(*, user: User) -> Token:
    """Replace the user's API token; the old one stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)
