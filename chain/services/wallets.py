"""Wallets: managed keys encrypted at rest, external wallets proven by Sign-In with Ethereum (EIP-4361)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.models import SiweNonce, Wallet
from common.crypto import key_setting
from common.errors import Conflict, InvalidInput, PermissionDenied
from marketplace.models import User

_KEY_VERSION = b"\x01"


def _wallet_cipher() -> AESGCM:
    return AESGCM(key_setting("WALLET_ENCRYPTION_KEY"))


def _seal(private_key: bytes, address: str) -> bytes:
    nonce = secrets.token_bytes(12)
    # The address is authenticated data: a sealed key moved onto another wallet row will not open.
    return _KEY_VERSION + nonce + _wallet_cipher().encrypt(nonce, private_key, address.encode())


def _open(sealed: bytes | memoryview, address: str) -> bytes:
    sealed = bytes(sealed)
    if sealed[:1] != _KEY_VERSION:
        raise ImproperlyConfigured("Unknown wallet key format.")
    return _wallet_cipher().decrypt(sealed[1:13], sealed[13:], address.encode())


def wallet_managed_get_or_create(*, user: User) -> Wallet:
    """The user's managed wallet, generating its key on first use. It becomes the primary wallet
    when the user has none."""
    existing = Wallet.objects.filter(user=user, kind=Wallet.Kind.MANAGED).first()
    if existing:
        return existing
    account = Account.create()
    with transaction.atomic():
        has_primary = Wallet.objects.select_for_update().filter(user=user, is_primary=True).exists()
        try:
            with transaction.atomic():
                return Wallet.objects.create(
                    user=user,
                    address=account.address,
                    kind=Wallet.Kind.MANAGED,
                    encrypted_key=_seal(bytes(account.key), account.address),
                    is_primary=not has_primary,
                )
        except IntegrityError:
            return Wallet.objects.get(user=user, kind=Wallet.Kind.MANAGED)


def wallet_signer(*, address: str) -> LocalAccount:
    """The key of a managed wallet, for the transaction sender only. External wallets have none."""
    wallet = Wallet.objects.filter(address=Web3.to_checksum_address(address), kind=Wallet.Kind.MANAGED).first()
    if wallet is None or not wallet.encrypted_key:
        raise PermissionDenied(f"The marketplace holds no key for {address}.")
    return Account.from_key(_open(wallet.encrypted_key, wallet.address))


def wallet_primary(*, user: User) -> Wallet:
    wallet = Wallet.objects.filter(user=user, is_primary=True).first()
    return wallet or wallet_managed_get_or_create(user=user)


def wallet_set_primary(*, user: User, wallet: Wallet) -> Wallet:
    if wallet.user_id != user.pk:
        raise PermissionDenied("That wallet is not yours.")
    with transaction.atomic():
        Wallet.objects.filter(user=user, is_primary=True).exclude(pk=wallet.pk).update(is_primary=False)
        wallet.is_primary = True
        wallet.save(update_fields=["is_primary"])
    return wallet


def user_addresses(*, user: User) -> set[str]:
    """Addresses the user may act from: the managed wallet and SIWE-verified external wallets."""
    return set(
        Wallet.objects.filter(user=user)
        .exclude(kind=Wallet.Kind.EXTERNAL, verified_at__isnull=True)
        .values_list("address", flat=True)
    )


# --- Sign-In with Ethereum (EIP-4361) ---
# A strict parser of the message grammar (EIP-4361's ABNF) for the fields we issue, rather than the
# `siwe` package, whose pins do not match our web3/eth-account: the message must be exactly the
# grammar, byte for byte (no trimming, no CRLF rewriting: the signature covers what is parsed).

SIWE_STATEMENT = "Sign in to the privacy-preserving data exchange."
_RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"
_SIWE = re.compile(
    r"(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://)?"
    r"(?P<domain>[A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?)"
    r" wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[a-fA-F0-9]{40})\n"
    r"\n"
    r"(?:(?P<statement>[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+)\n)?"
    r"\n"
    r"URI: (?P<uri>[A-Za-z][A-Za-z0-9+.\-]*:[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+)\n"
    r"Version: (?P<version>1)\n"
    r"Chain ID: (?P<chain_id>[1-9][0-9]{0,18})\n"
    r"Nonce: (?P<nonce>[a-zA-Z0-9]{8,64})\n"
    rf"Issued At: (?P<issued_at>{_RFC3339})"
    rf"(?:\nExpiration Time: (?P<expiration_time>{_RFC3339}))?"
    rf"(?:\nNot Before: (?P<not_before>{_RFC3339}))?"
    r"(?:\nRequest ID: (?P<request_id>[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*))?"
    r"(?:\nResources:(?P<resources>(?:\n- [A-Za-z][A-Za-z0-9+.\-]*:[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+)+))?"
)


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    statement: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: str
    expiration_time: str | None = None
    not_before: str | None = None
    scheme: str | None = None

    def text(self) -> str:
        lines = [
            f"{self.scheme + '://' if self.scheme else ''}{self.domain} "
            "wants you to sign in with your Ethereum account:",
            self.address,
            "",
            self.statement,
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        if self.expiration_time:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before:
            lines.append(f"Not Before: {self.not_before}")
        return "\n".join(lines)


def _malformed(what: str) -> InvalidInput:
    return InvalidInput(f"That is not a valid EIP-4361 (Sign-In with Ethereum) message: {what}.", code="siwe_malformed")


def siwe_parse(message: str) -> SiweMessage:
    """Parse an EIP-4361 message exactly as signed; refuse anything outside the grammar."""
    match = _SIWE.fullmatch(message)
    if not match:
        raise _malformed("it does not follow the message format")
    g = match.groupdict()
    if not Web3.is_checksum_address(g["address"]):
        raise _malformed("the address must be written with its EIP-55 checksum")
    for name in ("issued_at", "expiration_time", "not_before"):
        if g[name]:
            _parse_time(g[name])
    return SiweMessage(
        domain=g["domain"],
        address=g["address"],
        statement=g["statement"] or "",
        uri=g["uri"],
        version=g["version"],
        chain_id=int(g["chain_id"]),
        nonce=g["nonce"],
        issued_at=g["issued_at"],
        expiration_time=g["expiration_time"],
        not_before=g["not_before"],
        scheme=g["scheme"],
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def siwe_site() -> tuple[str, str, str]:
    """(scheme, domain, URI) every sign-in message must name: those of SITE_URL, the site's public
    address, never the request's Host header (which the client writes)."""
    site = urlsplit(settings.SITE_URL)
    return site.scheme, site.netloc, f"{site.scheme}://{site.netloc}/"


class SiweNonceOffer(TypedDict):
    """What a client needs to sign in: the nonce, the fields the message must name and, when the
    address is known, the message itself (else None)."""

    nonce: str
    domain: str
    uri: str
    chain_id: int
    statement: str
    issued_at: str
    expiration_time: str
    message: str | None


def siwe_nonce_issue(*, user: User | AnonymousUser | None, chain_id: int, address: str | None) -> SiweNonceOffer:
    """A fresh single-use nonce and, when the address is known, the exact message to sign."""
    _scheme, domain, uri = siwe_site()
    now = timezone.now().replace(microsecond=0)
    nonce = SiweNonce.objects.create(
        nonce=secrets.token_hex(12),
        user=user if user and user.is_authenticated else None,
        expires_at=now + timedelta(seconds=settings.SIWE_NONCE_TTL_SECONDS),
    )
    out: SiweNonceOffer = {
        "nonce": nonce.nonce,
        "domain": domain,
        "uri": uri,
        "chain_id": chain_id,
        "statement": SIWE_STATEMENT,
        "issued_at": _iso(now),
        "expiration_time": _iso(nonce.expires_at),
        "message": None,
    }
    if address:
        try:
            checksummed = Web3.to_checksum_address(address)
        except ValueError as exc:
            raise InvalidInput("That is not an Ethereum address.", code="invalid_address") from exc
        out["message"] = SiweMessage(
            domain=domain,
            address=checksummed,
            statement=SIWE_STATEMENT,
            uri=uri,
            version="1",
            chain_id=chain_id,
            nonce=nonce.nonce,
            issued_at=out["issued_at"],
            expiration_time=out["expiration_time"],
        ).text()
    return out


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _malformed(f"bad timestamp {value!r}") from exc
    if parsed.tzinfo is None:
        raise _malformed(f"timestamp {value!r} has no time zone")
    return parsed


def siwe_verify(*, message: str, signature: str, chain_id: int) -> SiweMessage:
    """Check an EIP-4361 message and its signature; consume its nonce. Returns the parsed message.

    Every field we issue is checked: the domain (and scheme, when given) and the URI's origin are
    SITE_URL's; the chain is ``chain_id``; issued-at is not in the future nor before its nonce was
    issued; expiration-time, when present, has not passed and not-before has; the nonce is one we
    issued, unused and unexpired, and is used up here; the signature is by the message's address."""
    parsed = siwe_parse(message)
    scheme, domain, _uri = siwe_site()
    if parsed.domain != domain or (parsed.scheme and parsed.scheme != scheme):
        raise PermissionDenied(f"The message is for {parsed.domain}, not {domain}.", code="siwe_wrong_domain")
    uri = urlsplit(parsed.uri)
    if (uri.scheme, uri.netloc) != (scheme, domain):
        raise PermissionDenied(f"The message's URI is not on {domain}.", code="siwe_wrong_uri")
    if parsed.chain_id != chain_id:
        raise InvalidInput(f"The message is for chain {parsed.chain_id}, not {chain_id}.", code="siwe_wrong_chain")
    now = timezone.now()
    skew = timedelta(seconds=settings.SIWE_CLOCK_SKEW_SECONDS)
    issued_at = _parse_time(parsed.issued_at)
    if issued_at > now + skew:
        raise PermissionDenied("The message's issued-at time is in the future.", code="siwe_issued_in_future")
    if parsed.expiration_time and _parse_time(parsed.expiration_time) <= now:
        raise PermissionDenied("The sign-in message has expired; ask for a new one.", code="siwe_expired")
    if parsed.not_before and _parse_time(parsed.not_before) > now + skew:
        raise PermissionDenied("The sign-in message is not valid yet.", code="siwe_not_yet_valid")
    try:
        recovered = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # noqa: BLE001 - any malformed signature (length, hex, v value)
        raise InvalidInput("The signature is malformed.", code="siwe_bad_signature") from exc
    if recovered != parsed.address:
        raise PermissionDenied("The signature was not made by the message's address.", code="siwe_bad_signature")
    with transaction.atomic():
        row = SiweNonce.objects.select_for_update().filter(nonce=parsed.nonce).first()
        if row is None:
            raise PermissionDenied("Unknown nonce; ask for a new one.", code="siwe_bad_nonce")
        if row.used_at is not None:
            raise PermissionDenied("This sign-in message was already used.", code="siwe_nonce_used")
        if row.expires_at <= now:
            raise PermissionDenied("The nonce has expired; ask for a new one.", code="siwe_expired")
        # Dated before its nonce existed (issued-at is whole seconds): not a message made for it.
        if issued_at < row.created_at - skew - timedelta(seconds=1):
            raise PermissionDenied(
                "The message's issued-at time is before its nonce was issued.", code="siwe_bad_nonce"
            )
        row.used_at = now
        row.save(update_fields=["used_at"])
    return parsed


def wallet_link_external(*, user: User, message: SiweMessage) -> Wallet:
    """Link a SIWE-verified address to ``user`` (idempotent for the same user)."""
    address = Web3.to_checksum_address(message.address)
    existing = Wallet.objects.filter(address=address).first()
    if existing and existing.user_id != user.pk:
        raise Conflict("That wallet is already linked to another account.", code="wallet_taken")
    if existing:
        existing.verified_at = timezone.now()
        existing.save(update_fields=["verified_at"])
        return existing
    return Wallet.objects.create(user=user, address=address, kind=Wallet.Kind.EXTERNAL, verified_at=timezone.now())


def wallet_login_user(*, message: SiweMessage, create_account: bool = False) -> User:
    """The user a verified external wallet signs in as. With ``create_account`` a wallet no account
    is linked to signs up: a new account (no password; it signs in with the wallet) owns it."""
    wallet = (
        Wallet.objects.select_related("user")
        .filter(address=Web3.to_checksum_address(message.address), kind=Wallet.Kind.EXTERNAL)
        .first()
    )
    if wallet is None and create_account:
        return _wallet_signup(Web3.to_checksum_address(message.address))
    if wallet is None or not wallet.user.is_active:
        raise PermissionDenied(
            "No account is linked to this wallet; sign in with a password and link it on your profile first.",
            code="wallet_unknown",
        )
    wallet.verified_at = timezone.now()
    wallet.save(update_fields=["verified_at"])
    return wallet.user


def _wallet_signup(address: str) -> User:
    """A new account for ``address`` (SIWE-verified by the caller), named after the address."""
    base = f"wallet-{address[2:10].lower()}"
    for attempt in range(20):
        username = base if attempt == 0 else f"{base}-{secrets.token_hex(2)}"
        try:
            with transaction.atomic():
                user = User.objects.create_user(username=username, password=None)
                Wallet.objects.create(user=user, address=address, kind=Wallet.Kind.EXTERNAL, verified_at=timezone.now())
                return user
        except IntegrityError:
            wallet = Wallet.objects.select_related("user").filter(address=address).first()
            if wallet is not None:  # linked meanwhile (a second tab): sign in as its owner
                if wallet.kind != Wallet.Kind.EXTERNAL or not wallet.user.is_active:
                    raise Conflict("That wallet belongs to another account.", code="wallet_taken") from None
                return wallet.user
    raise Conflict("Could not choose a username for this wallet; try again.", code="signup_failed")


def wallet_top_up(*, user: User) -> Wallet:
    """Development chains only: test ether for gas and test stablecoin for the user's managed wallet,
    and for the own wallets they linked with SIWE (so a browser wallet can pay on the dev chain too)."""
    from chain import client
    from chain.faucet import fund_address

    dep = client.deployment()
    if not dep.has_faucet:
        raise PermissionDenied("The faucet exists only on development chains.", code="no_faucet")
    wallet = wallet_managed_get_or_create(user=user)
    fund_address(client.web3(), {"contracts": dep.contracts}, wallet.address)
    for address in user_addresses(user=user) - {wallet.address}:
        fund_address(client.web3(), {"contracts": dep.contracts}, address)
    return wallet
