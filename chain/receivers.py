"""Signal receivers: moderation reaches the chain, new users get a managed wallet."""

from __future__ import annotations

from typing import Any


def dataset_status_changed(sender: Any, *, dataset_id: int, status: str, **kwargs: Any) -> None:
    from django.conf import settings

    if not settings.CHAIN_RPC_URL:
        return
    from chain.services.publishing import listing_ordering_sync_for_dataset

    listing_ordering_sync_for_dataset(dataset_id)


def user_created(sender: Any, *, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """Every account gets a managed wallet (key generated here, encrypted at rest): no wallet needed to start."""
    if created and not raw:
        from chain.services.wallets import wallet_managed_get_or_create

        wallet_managed_get_or_create(user=instance)
