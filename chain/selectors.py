"""Reads from the chain for pages and the API (no writes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from chain import client
from chain.models import ChainListing, Wallet
from chain.units import units_to_price
from chain.wrappers import MockStablecoin
from common.errors import Conflict
from marketplace.models import Dataset

_UNREAD: Any = object()


@dataclass(frozen=True)
class Refusal:
    """Why a dataset cannot be ordered now: a stable ``code`` and a sentence for people."""

    code: str
    detail: str

    def as_error(self) -> Conflict:
        return Conflict(self.detail, code=self.code)


def dataset_orderable(*, dataset: Dataset, user: Any = None, listing: Any = _UNREAD) -> Refusal | None:
    """Whether ``user`` (None: anyone) can order compute on ``dataset`` now, from the database only
    (the chain's own refusals come when the order is sent): None when they can, else the first
    ``Refusal``. The one rule behind the job form, the quote, ``job_create`` and ``order_create``.
    Pass ``listing`` when it is already read (None when the dataset has none)."""
    if dataset.status != Dataset.Status.LISTED:
        return Refusal("not_listed", "Only listed datasets can be ordered.")
    if user is not None and user.is_authenticated and dataset.owner_id == user.pk:
        return Refusal("own_dataset", "You cannot order compute on your own dataset.")
    if dataset.validation != Dataset.Validation.VALID:
        return Refusal("dataset_not_valid", "This dataset's file has not passed validation.")
    if listing is _UNREAD:
        listing = ChainListing.objects.filter(dataset=dataset).first()
    if listing is None or listing.state != ChainListing.State.PUBLISHED:
        return Refusal("not_on_chain", "This dataset is not published on chain yet.")
    if listing.operator_ordering_disabled:
        return Refusal("ordering_closed", "Ordering of this dataset is closed on chain.")
    return None


def wallet_balances(wallets: list[Wallet]) -> dict[str, dict[str, str | None]]:
    """Ether and payment-token balance per wallet address, as decimal strings.
    Raises ``ChainUnavailable`` when the chain is not configured or stops answering."""
    dep = client.deployment()
    w3 = client.web3()
    token = MockStablecoin(w3, dep.payment_token) if dep.payment_token else None
    return {
        wallet.address: {
            "ether": str(Web3.from_wei(w3.eth.get_balance(Web3.to_checksum_address(wallet.address)), "ether")),
            "payment_token": str(units_to_price(token.balance_of(wallet.address))) if token else None,
        }
        for wallet in wallets
    }
