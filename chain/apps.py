"""The chain: contracts, artifacts, web3 client, typed wrappers, wallets, orders, indexer, faucet.

Seams used from the marketplace core: ``Dataset.price / price_token`` become the on-chain fixed
price, moderation transitions (``marketplace.signals.dataset_status_changed``) flip the operator's
ordering flag, and ``Dataset.commitment`` (SHA-256 of a secret salt and the file) is the dataset hash for receipts."""

from django.apps import AppConfig

SANE_RECURSION_LIMIT = 3000


class ChainConfig(AppConfig):
    name = "chain"
    verbose_name = "Chain"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import sys

        import py_ecc  # noqa: F401  (raises the recursion limit to 100,000 when first imported)
        from django.db.models.signals import post_save

        # Back to a sane limit, so deep recursion raises RecursionError instead of overflowing the C
        # stack and killing the process; py_ecc's arithmetic needs far less than this.
        sys.setrecursionlimit(SANE_RECURSION_LIMIT)

        from chain import receivers
        from marketplace.models import User
        from marketplace.signals import dataset_status_changed

        dataset_status_changed.connect(receivers.dataset_status_changed, dispatch_uid="chain-ordering-flag")
        post_save.connect(receivers.user_created, sender=User, dispatch_uid="chain-managed-wallet")
