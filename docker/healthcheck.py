"""Container health check: GET http://127.0.0.1:8000/healthz/ and expect 200.

Used by the Dockerfile's HEALTHCHECK. Standard library only (urllib), so it
runs without importing Django. The Host header is the first entry of
DJANGO_ALLOWED_HOSTS so the request is not rejected by ALLOWED_HOSTS, and
X-Forwarded-Proto: https keeps SECURE_SSL_REDIRECT (when the settings trust that
header) from turning the probe into a redirect.
"""

import os
import sys
import urllib.request

PORT = os.environ.get("HEALTHCHECK_PORT", "8000")
PATH = "/healthz/"


def _host() -> str:
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{PATH}",
        headers={"Host": _host(), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - fixed http URL
            status = response.status
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        print(f"healthcheck failed: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck failed: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
