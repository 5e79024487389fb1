"""Helpers the indexer and rollback tests share: marketplace rows for a listing being published on
the test anvil, a free dataset's order, and the marketplace user behind the buyer's key."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from chain.models import ChainListing, Wallet
from marketplace.models import User
from tests.chain.conftest import ALGORITHM, DELTA_1E5, Chain
from tests.factories import UserFactory, make_dataset

FREE = {"price": 0}


@pytest.fixture
def provider_user(db) -> User:
    return UserFactory(username="indexer-provider")


def listing_for(chain: Chain, provider_user: User, *, metadata: str = "metadata v1", **params) -> ChainListing:
    """A marketplace dataset whose listing is being published with ``chain.publish_params(...)``."""
    p = chain.publish_params(metadataHash=keccak(text=metadata), **params)
    dataset = make_dataset(owner=provider_user, title=f"Dataset {metadata}")
    return ChainListing.objects.create(
        dataset=dataset,
        chain_id=chain.w3.eth.chain_id,
        owner_address=chain.accounts.provider.address,
        payment_token=p["paymentToken"],
        price_units=p["price"],
        epsilon_cap_units=p["epsilonCap"],
        epsilon_per_job_units=p["epsilonPerJobCap"],
        delta_units=p["deltaPerJobCap"],
        delta_cap_units=p["deltaCap"],
        metadata_hash="0x" + p["metadataHash"].hex(),
    )


def dispense(chain: Chain, dataset, who, *, epsilon: int = 250_000, algorithm: bytes = ALGORITHM, **ticket_fields):
    """A free dataset's order with an operator-signed ticket (``ticket_fields``: its nonce...); (order id, tx hash)."""
    ticket, signature = chain.ticket(
        dataset, who, epsilon=epsilon, delta=DELTA_1E5, algorithm=algorithm, **ticket_fields
    )
    receipt = chain.tx(who, dataset.datatoken.functions.dispenseAndOrder(ticket.as_tuple(), signature))
    return chain.event(dataset.datatoken, "OrderStarted", receipt).orderId, receipt["transactionHash"].to_0x_hex()


def known_buyer(chain: Chain) -> User:
    user = UserFactory(username="indexer-buyer")
    Wallet.objects.create(user=user, address=chain.accounts.buyer.address, kind=Wallet.Kind.EXTERNAL)
    return user
