"""Start-up check: a configured chain must answer, be the expected chain, and carry the deployment."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register("chain")
def chain_reachable(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Runs with runserver, migrate and `manage.py check`; web (wsgi) and worker start-up call
    :func:`chain.client.chain_preflight` directly. Silent when no chain is configured."""
    if not settings.CHAIN_RPC_URL:
        return []
    from chain.client import ChainUnavailable, chain_preflight

    try:
        chain_preflight()
    except ChainUnavailable as exc:
        return [Error(exc.detail, hint="Check CHAIN_RPC_URL, CHAIN_ID and CHAIN_DEPLOYMENT_FILE.", id="chain.E001")]
    return []
