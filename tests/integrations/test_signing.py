"""Webhook signatures: what a receiver computes from the secret, the timestamp and the raw body."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from integrations.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    secret_generate,
    signature_headers,
    signature_verify,
)

SECRET = "whsec_test-secret"  # noqa: S105
BODY = b'{"id":"evt_1","type":"job.finished"}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    headers = signature_headers(SECRET, BODY, timestamp=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: f"v1={expected}"}
    signature_verify(SECRET, BODY, timestamp="1700000000", signature=f"v1={expected}", now=1_700_000_010)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"body": BODY + b" "}, "does not match"),
        ({"secret": "whsec_other"}, "does not match"),
        ({"timestamp": "1700000001"}, "does not match"),
        ({"now": 1_700_000_000 + 301}, "tolerance"),
        ({"now": 1_700_000_000 - 301}, "tolerance"),
        ({"signature": None}, "Missing"),
        ({"signature": "v0=abc"}, "No v1 signature"),
        ({"timestamp": "soon"}, "not an integer"),
    ],
)
def test_a_changed_body_secret_or_timestamp_or_a_replay_is_refused(change, message):
    headers = signature_headers(SECRET, BODY, timestamp=1_700_000_000)
    args = {
        "secret": SECRET,
        "body": BODY,
        "timestamp": headers[TIMESTAMP_HEADER],
        "signature": headers[SIGNATURE_HEADER],
        "now": 1_700_000_000,
        **change,
    }
    with pytest.raises(SignatureError, match=message):
        signature_verify(
            args["secret"], args["body"], timestamp=args["timestamp"], signature=args["signature"], now=args["now"]
        )


def test_any_of_several_v1_signatures_may_match():
    good = signature_headers(SECRET, BODY, timestamp=1_700_000_000)[SIGNATURE_HEADER]
    signature_verify(SECRET, BODY, timestamp="1700000000", signature=f"v1=00ff, {good}", now=1_700_000_000)


def test_secrets_are_random_and_prefixed():
    a, b = secret_generate(), secret_generate()
    assert a != b and a.startswith("whsec_") and len(a) > 40


def test_the_verification_snippet_in_the_docs_accepts_our_signature_and_refuses_a_changed_body():
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "integrations.md").read_text()
    section = doc.split("### Verify the signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/integrations.md", "exec"), namespace)  # noqa: S102 (our own docs)
    verify = namespace["verify"]
    headers = signature_headers(SECRET, BODY, timestamp=int(time.time()))
    assert verify(SECRET, BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]) is True
    assert verify(SECRET, BODY + b"x", headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]) is False
    old = signature_headers(SECRET, BODY, timestamp=int(time.time()) - 3600)
    assert verify(SECRET, BODY, old[TIMESTAMP_HEADER], old[SIGNATURE_HEADER]) is False
