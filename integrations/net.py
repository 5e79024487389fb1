"""Outgoing webhook requests: which URLs are allowed, and one POST with short timeouts.

Unless ``WEBHOOK_ALLOW_PRIVATE_HOSTS`` is on (local runs and tests), a webhook may only reach
public addresses: loopback, private, link-local (cloud metadata), shared, multicast and reserved
ranges are refused, both when the URL is registered and at every delivery. The delivery connects
to the very address it checked (the hostname is resolved once per attempt and pinned, TLS still
verifies the hostname), so a DNS answer that changes between check and connect cannot redirect
it inside. Redirects are not followed."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from common.errors import InvalidInput
from integrations.conf import setting

MAX_URL_LENGTH = 500
RESPONSE_BYTES_KEPT = 500


class UnsafeURL(InvalidInput):
    code = "invalid_url"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``OSError`` if it does not)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An IPv4 or IPv6 entry's address is a string; (int, bytes) comes only for an IPv6 entry in a Python
    # built without IPv6, which could not connect to it anyway.
    return list(dict.fromkeys(info[4][0] for info in infos if isinstance(info[4][0], str)))


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def url_check(url: str, *, allow_private: bool | None = None, resolve_host: bool = True) -> Target:
    """The parsed target of ``url`` with the addresses it may be sent to, or ``UnsafeURL``.

    With private hosts allowed and ``resolve_host`` off (registering a URL in a local run or a
    test) the host is not looked up: nothing would be refused, and no DNS query leaves."""
    if allow_private is None:
        allow_private = bool(setting("WEBHOOK_ALLOW_PRIVATE_HOSTS"))
    url = (url or "").strip()
    if not url:
        raise UnsafeURL("Give the URL to send events to.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeURL("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"The URL is not valid: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("Put no user name or password in the URL; verify our signature instead.")
    if parts.fragment:
        raise UnsafeURL("The URL must not have a #fragment.")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if allow_private and not resolve_host:
        return Target(scheme=parts.scheme, host=host, port=port, path=path, addresses=())
    try:
        addresses = tuple(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"The host {host} cannot be resolved.") from exc
    if not addresses:
        raise UnsafeURL(f"The host {host} cannot be resolved.")
    if not allow_private:
        refused = [a for a in addresses if not address_is_public(a)]
        if refused:
            raise UnsafeURL(
                f"The host {host} resolves to {refused[0]}, a loopback, private or reserved address; "
                "webhooks go to public addresses only."
            )
    return Target(scheme=parts.scheme, host=host, port=port, path=path, addresses=addresses)


@dataclass
class PostResult:
    status: int | None
    body: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        self._ssl_context = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._ssl_context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


def post_json(url: str, body: bytes, headers: dict[str, str]) -> PostResult:
    """POST ``body`` to ``url`` once. Never raises for network trouble: the result says what
    happened. The whole exchange is cut off after twice ``WEBHOOK_TIMEOUT_SECONDS``."""
    timeout = float(setting("WEBHOOK_TIMEOUT_SECONDS"))
    started = time.monotonic()

    def result(status: int | None, text: str = "", error: str = "") -> PostResult:
        return PostResult(status, text[:RESPONSE_BYTES_KEPT], error[:500], int((time.monotonic() - started) * 1000))

    try:
        target = url_check(url)
    except UnsafeURL as exc:
        return result(None, error=f"Refused: {exc.detail}")
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = cls(target.host, target.port, address=target.addresses[0], timeout=timeout)
    # A server that answers a byte at a time must not hold a worker for long.
    watchdog = threading.Timer(2 * timeout, _cut, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target.path, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = conn.getresponse()
        text = response.read(RESPONSE_BYTES_KEPT).decode("utf-8", "replace")
        error = ""
        if 300 <= response.status < 400:
            error = f"Redirect to {response.getheader('Location', '?')} not followed."
        elif not 200 <= response.status < 300:
            error = f"HTTP {response.status}"
        return result(response.status, text, error)
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if time.monotonic() - started >= 2 * timeout - 0.05:
            return result(None, error=f"Timed out after {2 * timeout:g} s.")
        return result(None, error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    finally:
        watchdog.cancel()
        conn.close()


def _cut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
