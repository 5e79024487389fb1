"""Publishing a dataset on chain (data NFT + datatoken + price + budget caps, one transaction) and
keeping the operator's ordering flag in step with moderation."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from web3 import Web3

from chain import client
from chain.models import ChainListing, ChainTransaction, Wallet
from chain.services.outbox import confirmed_receipt, poll, transaction_enqueue
from chain.services.transitions import listing_transition
from chain.services.wallets import user_addresses, wallet_primary
from chain.units import delta_to_units, epsilon_to_units, hash_bytes, price_to_units
from chain.wrappers import DataFactory, Datatoken, MockStablecoin, PublishParams
from common.errors import Conflict, InvalidInput, PermissionDenied
from common.tasks import enqueue
from marketplace.models import Dataset, User

logger = logging.getLogger(__name__)


def payment_token_address(symbol: str) -> str:
    """The payment token contract for a price symbol on this chain (the deployment's stablecoin)."""
    address = client.deployment().payment_token
    if address is None:
        raise client.ChainUnavailable("The deployment has no payment token.")
    on_chain = _token_symbol(address)
    if symbol.upper() != on_chain.upper():
        raise InvalidInput(
            f"Prices on this chain are settled in {on_chain}; set the dataset's price token to {on_chain}.",
            code="unsupported_price_token",
        )
    return address


_SYMBOLS: dict[str, str] = {}


def _token_symbol(address: str) -> str:
    if address not in _SYMBOLS:
        _SYMBOLS[address] = MockStablecoin(client.web3(), address).symbol()
    return _SYMBOLS[address]


def metadata_document(dataset: Dataset) -> dict[str, Any]:
    """The public metadata the data NFT commits to (its hash is stored on chain)."""
    return {
        "id": dataset.pk,
        "title": dataset.title,
        "licence": dataset.licence,
        "declared_schema": dataset.declared_schema,
        # The hiding commitment, SHA-256(salt || file): a plain hash would let anyone holding a
        # candidate file confirm it is this dataset.
        "commitment": dataset.commitment,
        "price": str(dataset.price),
        "price_token": dataset.price_token,
        "epsilon_total": str(dataset.epsilon_total),
        "epsilon_per_job": str(dataset.epsilon_per_job),
        "delta": dataset.delta,
    }


def metadata_hash(dataset: Dataset) -> bytes:
    canonical = json.dumps(metadata_document(dataset), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


def _publishable(dataset: Dataset, user: User) -> None:
    if dataset.owner_id != user.pk:
        raise PermissionDenied("Only the dataset's owner can publish it on chain.")
    if not dataset.declared_schema:
        raise Conflict("Confirm the schema before publishing on chain.", code="schema_not_declared")
    if dataset.validation != Dataset.Validation.VALID:
        raise Conflict("The file must pass validation before it is published on chain.", code="validation_pending")
    if not dataset.commitment:
        raise Conflict("The dataset has no commitment to its file yet; upload the file again.", code="no_commitment")
    if dataset.status in (Dataset.Status.REJECTED, Dataset.Status.DELISTED):
        raise Conflict(f"A {dataset.get_status_display().lower()} dataset cannot be published.", code="not_publishable")


def publish_params(dataset: Dataset) -> tuple[str, PublishParams]:
    """The factory address and the exact ``publish`` arguments for ``dataset``: what the managed
    wallet sends, and what an integrator's own wallet must send for the marketplace to accept it."""
    dep = client.deployment()
    try:
        price_units = price_to_units(dataset.price)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="invalid_price") from exc
    params = PublishParams(
        name=f"PPDX dataset {dataset.pk}",
        symbol=f"PPDX{dataset.pk}",
        metadata_uri=f"{settings.SITE_URL.rstrip('/')}/api/v1/datasets/{dataset.pk}/",
        metadata_hash=metadata_hash(dataset),
        payment_token=payment_token_address(dataset.price_token),
        price=price_units,
        epsilon_cap=epsilon_to_units(dataset.epsilon_total),
        epsilon_per_job_cap=epsilon_to_units(dataset.epsilon_per_job),
        delta_cap=delta_to_units(dataset.delta_total),
        delta_per_job_cap=delta_to_units(dataset.delta),
    )
    return dep.address("DataFactory"), params


def _listing_start(dataset: Dataset, params: PublishParams, owner_address: str, tx_hash: str = "") -> ChainListing:
    """Create (or reset a failed) listing in state ``publishing``; the caller holds the dataset lock."""
    listing = ChainListing.objects.filter(dataset=dataset).first()
    if listing and listing.state != ChainListing.State.FAILED:
        raise Conflict(f"This dataset is already {listing.get_state_display().lower()} on chain.", code="published")
    dep = client.deployment()
    fields: dict[str, Any] = {
        "chain_id": dep.chain_id,
        "genesis_hash": dep.genesis_hash,
        "owner_address": owner_address,
        "payment_token": Web3.to_checksum_address(params.payment_token),
        "price_units": params.price,
        "epsilon_cap_units": params.epsilon_cap,
        "epsilon_per_job_units": params.epsilon_per_job_cap,
        "delta_units": params.delta_per_job_cap,
        "delta_cap_units": params.delta_cap,
        "metadata_hash": "0x" + params.metadata_hash.hex(),
        "publish_tx_hash": tx_hash,
        "publish_tx": None,
        "nft_address": "",
        "datatoken_address": "",
        "error": "",
        "created_at": timezone.now(),  # a retry's verification window starts now
    }
    if listing is None:
        return ChainListing.objects.create(dataset=dataset, state=ChainListing.State.PUBLISHING, **fields)
    for key, value in fields.items():
        setattr(listing, key, value)
    listing.save()
    return listing_transition(listing, ChainListing.State.PUBLISHING)


def dataset_publish(*, dataset: Dataset, user: User, tx_hash: str | None = None) -> ChainListing:
    """Mint the dataset's data NFT and datatoken with its price and budget caps in one transaction.

    Without ``tx_hash`` the owner's managed wallet sends it. With ``tx_hash`` the owner's own
    (SIWE-linked) wallet already sent ``DataFactory.publish`` with :func:`publish_params`, and the
    marketplace verifies it. Returns at once; the listing turns ``published`` (or ``failed``, with
    the reason) when the transaction is mined and checked."""
    _publishable(dataset, user)
    factory_address, params = publish_params(dataset)
    if tx_hash:
        hash_bytes(tx_hash, "tx_hash")
        with transaction.atomic():
            locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
            if ChainListing.objects.filter(publish_tx_hash=tx_hash.lower()).exclude(dataset=locked).exists():
                raise Conflict("That transaction published another dataset.", code="publish_replayed")
            listing = _listing_start(locked, params, owner_address="", tx_hash=tx_hash.lower())
            enqueue("chain.tasks.listing_verify_task", listing.pk)
        return listing
    wallet = wallet_primary(user=user)
    if wallet.kind != Wallet.Kind.MANAGED:
        raise Conflict(
            "Your primary wallet is your own: send DataFactory.publish with it and register the transaction "
            "hash, or make the managed wallet primary.",
            code="external_wallet_publish",
        )
    factory = DataFactory(client.web3(), factory_address)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        listing = _listing_start(locked, params, owner_address=wallet.address)
        tx = transaction_enqueue(
            purpose=ChainTransaction.Purpose.PUBLISH,
            sender=wallet.address,
            to=factory.address,
            data=factory.publish_data(params),
            dataset=locked,
        )
        listing.publish_tx = tx
        listing.publish_tx_hash = ""
        listing.save(update_fields=["publish_tx", "publish_tx_hash"])
    return listing


def _accept_published(listing: ChainListing, receipt: Any, *, owners: set[str] | None) -> None:
    """Fill the listing from the factory's ``DatasetPublished`` in ``receipt``, or fail it saying why.
    ``owners``: the addresses allowed to own the NFT (None: the one already on the listing)."""
    if receipt["status"] != 1:
        listing_transition(listing, ChainListing.State.FAILED, error="The publish transaction reverted.")
        return
    events = DataFactory(client.web3(), client.deployment().address("DataFactory")).published_events(receipt)
    if not events:
        listing_transition(
            listing,
            ChainListing.State.FAILED,
            error="The transaction published nothing through the marketplace's factory.",
        )
        return
    event = events[0]
    problems = []
    owner = Web3.to_checksum_address(event["owner"])
    if owners is not None and owner not in owners:
        problems.append(f"the NFT owner {owner} is not one of your wallets")
    expected = {
        "metadataHash": listing.metadata_hash.lower(),
        "price": int(listing.price_units),
        "epsilonCap": listing.epsilon_cap_units,
        "epsilonPerJobCap": listing.epsilon_per_job_units,
        "deltaCap": listing.delta_cap_units,
        "deltaPerJobCap": listing.delta_units,
        "paymentToken": listing.payment_token,
    }
    for key, want in expected.items():
        got = event[key]
        got = (
            got.lower()
            if key == "metadataHash"
            else (Web3.to_checksum_address(got) if key == "paymentToken" else int(got))
        )
        if got != want:
            problems.append(f"{key} is {got} on chain, the listing says {want}")
    if problems:
        listing_transition(
            listing,
            ChainListing.State.FAILED,
            error="The published contracts do not match the listing: " + "; ".join(problems) + ".",
        )
        return
    listing_transition(
        listing,
        ChainListing.State.PUBLISHED,
        owner_address=owner,
        nft_address=Web3.to_checksum_address(event["nft"]),
        datatoken_address=Web3.to_checksum_address(event["datatoken"]),
        published_at=listing.published_at or timezone.now(),
        # A new datatoken starts closed to orders (contracts v2).
        operator_ordering_disabled=True,
    )
    listing_id = listing.pk
    # The datatoken starts closed; the operator opens it now if moderators already listed the
    # dataset, else when they do (``listing_ordering_sync`` follows every moderation change).
    transaction.on_commit(lambda: listing_ordering_sync(listing_id=listing_id))


def listing_verify(listing_id: int, *, max_wait_seconds: float = 20) -> bool:
    """Verify a publish transaction the owner's own wallet sent. True once decided."""

    def decided() -> bool:
        listing = ChainListing.objects.select_related("dataset__owner").get(pk=listing_id)
        if listing.state != ChainListing.State.PUBLISHING or not listing.publish_tx_hash:
            return True
        receipt = confirmed_receipt(listing.publish_tx_hash)
        if receipt is None:
            if listing.created_at < timezone.now() - timedelta(hours=1):
                with transaction.atomic():
                    locked = ChainListing.objects.select_for_update().get(pk=listing_id)
                    if locked.state == ChainListing.State.PUBLISHING:
                        listing_transition(
                            locked,
                            ChainListing.State.FAILED,
                            error="The publish transaction was not confirmed on chain within an hour.",
                        )
                return True
            return False
        with transaction.atomic():
            locked = ChainListing.objects.select_for_update().get(pk=listing_id)
            if locked.state == ChainListing.State.PUBLISHING:
                _accept_published(locked, receipt, owners=user_addresses(user=listing.dataset.owner))
        return True

    return poll(decided, max_wait_seconds=max_wait_seconds)


def publish_settled(tx: ChainTransaction, receipt: Any) -> None:
    """A publish transaction mined (``receipt``) or failed (None): the listing follows."""
    listing = ChainListing.objects.select_for_update().filter(publish_tx=tx).first()
    if listing is None or listing.state != ChainListing.State.PUBLISHING:
        return
    if receipt is None:
        listing_transition(listing, ChainListing.State.FAILED, error=tx.error or "The publish transaction failed.")
        return
    _accept_published(listing, receipt, owners={listing.owner_address})


def listings_retire_stale(*, chain_id: int, genesis_hash: str) -> int:
    """Fail the listings published on an earlier chain with this id (another genesis): their
    contracts went with it, and their owners publish again. Returns how many."""
    stale = ChainListing.objects.filter(chain_id=chain_id).exclude(genesis_hash=genesis_hash)
    retired = 0
    with transaction.atomic():
        for listing in stale.exclude(state=ChainListing.State.FAILED).select_for_update():
            listing_transition(
                listing,
                ChainListing.State.FAILED,
                error="The chain was reset (new genesis block); publish the dataset again.",
            )
            retired += 1
    return retired


def listing_ordering_sync(*, listing_id: int) -> ChainTransaction | None:
    """Make the operator's on-chain ordering flag match moderation: only listed datasets can be
    ordered. Sends one operator transaction when they differ and none is on its way."""
    if not settings.CHAIN_OPERATOR_KEY:
        logger.warning("CHAIN_OPERATOR_KEY is not set; the ordering flag of listing %s is not synced", listing_id)
        return None
    with transaction.atomic():
        listing = ChainListing.objects.select_for_update(of=("self",)).select_related("dataset").get(pk=listing_id)
        if listing.state != ChainListing.State.PUBLISHED:
            return None
        disabled = listing.dataset.status != Dataset.Status.LISTED
        in_flight = ChainTransaction.objects.filter(
            purpose=ChainTransaction.Purpose.ORDERING_FLAG,
            dataset_id=listing.dataset_id,
            status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT],
        ).first()
        if in_flight is not None:
            # The flag transaction on its way re-checks when it settles.
            return in_flight
        if listing.operator_ordering_disabled == disabled:
            return None
        datatoken = Datatoken(client.web3(), listing.datatoken_address)
        return transaction_enqueue(
            purpose=ChainTransaction.Purpose.ORDERING_FLAG,
            sender=client.operator_account().address,
            to=datatoken.address,
            data=datatoken.set_operator_ordering_disabled_data(disabled),
            dataset=listing.dataset,
            context={"disabled": disabled},
        )


def ordering_flag_settled(tx: ChainTransaction, receipt: Any) -> None:
    """The operator's ordering flag transaction mined (``receipt``) or failed (None)."""
    if tx.dataset_id is None:  # the dataset was deleted, and its listing with it
        return
    listing = ChainListing.objects.filter(dataset_id=tx.dataset_id).first()
    if listing is None:
        return
    if receipt is None:
        logger.error("ordering flag transaction %s failed: %s", tx.pk, tx.error)
        return
    listing.operator_ordering_disabled = bool(tx.context.get("disabled"))
    listing.save(update_fields=["operator_ordering_disabled"])
    listing_id = listing.pk
    # Moderation may have moved again while this one was in flight.
    transaction.on_commit(lambda: listing_ordering_sync(listing_id=listing_id))


def listing_ordering_sync_for_dataset(dataset_id: int) -> None:
    listing = ChainListing.objects.filter(dataset_id=dataset_id, state=ChainListing.State.PUBLISHED).first()
    if listing is not None:
        try:
            listing_ordering_sync(listing_id=listing.pk)
        except client.ChainUnavailable as exc:
            logger.warning("ordering flag of dataset %s not synced: %s", dataset_id, exc.operator_detail)
