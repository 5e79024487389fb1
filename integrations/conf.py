"""Settings of the integrations app, with their defaults (override any in the Django settings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Webhook URLs may point at loopback and private networks (local runs and tests only).
    "WEBHOOK_ALLOW_PRIVATE_HOSTS": False,
    # Seconds to connect, and for each read; a delivery is cut off after twice this in all.
    "WEBHOOK_TIMEOUT_SECONDS": 5.0,
    # Waits before the 2nd, 3rd, ... attempt of a failed delivery; then it is given up.
    "WEBHOOK_RETRY_SCHEDULE": (10, 60, 300, 1800, 7200, 21600),
    # Endpoints one user may register.
    "WEBHOOK_MAX_PER_USER": 10,
    # Failed attempts in a row (no success in between) after which an endpoint is switched off.
    "WEBHOOK_DISABLE_AFTER_FAILURES": 50,
    # Server-sent events: how often the stream looks at the job row, how often it sends a
    # heartbeat comment, and how long one connection lasts before the client reconnects (below
    # gunicorn's default 30 s worker timeout, so a sync worker is never killed mid-stream).
    "JOB_EVENTS_POLL_SECONDS": 0.5,
    "JOB_EVENTS_HEARTBEAT_SECONDS": 15.0,
    "JOB_EVENTS_MAX_SECONDS": 25.0,
    # Reconnection delay the stream asks EventSource clients to use (milliseconds).
    "JOB_EVENTS_RETRY_MS": 1000,
}


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
