"""Webhook signatures: HMAC-SHA256 over ``"{timestamp}." + raw body`` with the endpoint's secret.

Every delivery carries ``X-Marketplace-Timestamp`` (Unix seconds) and ``X-Marketplace-Signature``
(``v1=<hex>``). A receiver recomputes the HMAC over the exact bytes it received, compares in
constant time, and refuses timestamps older than a few minutes (replays). This module has no
Django imports: integrators may copy ``signature_verify`` as it is (docs/integrations.md)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Marketplace-Signature"
TIMESTAMP_HEADER = "X-Marketplace-Timestamp"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature is missing, malformed, wrong, or its timestamp is outside the tolerance."""


def secret_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_compute(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature (hex) of ``body`` sent at ``timestamp``."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The two headers that sign ``body``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: f"{SCHEME}={signature_compute(secret, ts, body)}"}


def signature_verify(
    secret: str,
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``signature`` (the header's value, possibly several
    comma-separated ``v1=`` entries) signs ``body`` at ``timestamp`` and that timestamp is within
    ``tolerance`` seconds of ``now``."""
    if not timestamp or not signature:
        raise SignatureError("Missing timestamp or signature header.")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise SignatureError("The timestamp is not an integer.") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise SignatureError("The timestamp is outside the tolerance (a replay, or a clock off).")
    expected = signature_compute(secret, ts, body)
    candidates = [
        part.split("=", 1)[1].strip()
        for part in signature.split(",")
        if "=" in part and part.split("=", 1)[0].strip() == SCHEME
    ]
    if not candidates:
        raise SignatureError("No v1 signature in the header.")
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("The signature does not match.")
