"""The one door for order and listing statuses (``order_transition`` / ``listing_transition``) and
the one "can this dataset be ordered now?" rule (``dataset_orderable``), on the database alone."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chain.models import ChainListing, Order
from chain.selectors import dataset_orderable
from chain.services.transitions import listing_transition, order_transition
from chain.signals import listing_state_changed, order_status_changed
from common.errors import IllegalTransition
from marketplace.models import Dataset
from tests.factories import UserFactory, make_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed():
    provider = UserFactory(username="transitions-provider")
    staff = UserFactory(username="transitions-staff", is_staff=True)
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    listing = ChainListing.objects.create(
        dataset=dataset,
        chain_id=31337,
        state=ChainListing.State.PUBLISHED,
        owner_address="0x" + "11" * 20,
        datatoken_address="0x" + "22" * 20,
        payment_token="0x" + "33" * 20,
        price_units=0,
        epsilon_cap_units=10_000_000,
        epsilon_per_job_units=1_000_000,
        delta_units=100,
        metadata_hash="0x" + "44" * 32,
        operator_ordering_disabled=False,  # listed: the operator opened it
    )
    return dataset, listing


def _order(listing: ChainListing, status: str) -> Order:
    return Order.objects.create(
        buyer=UserFactory(),
        dataset=listing.dataset,
        listing=listing,
        source=Order.Source.MANAGED,
        consumer_address="0x" + "55" * 20,
        epsilon=Decimal("0.5"),
        delta=1e-6,
        algorithm_hash="0x" + "66" * 32,
        status=status,
    )


def _heard(signal) -> list[dict]:
    heard: list[dict] = []

    def receiver(sender, **kwargs):
        heard.append({k: v for k, v in kwargs.items() if k != "signal"})

    signal.connect(receiver, weak=False, dispatch_uid="test-transitions")
    return heard


@pytest.fixture
def order_signals():
    heard = _heard(order_status_changed)
    yield heard
    order_status_changed.disconnect(dispatch_uid="test-transitions")


@pytest.fixture
def listing_signals():
    heard = _heard(listing_state_changed)
    yield heard
    listing_state_changed.disconnect(dispatch_uid="test-transitions")


def test_an_order_moves_only_along_its_map_and_each_move_is_announced_once_after_commit(
    listed, order_signals, django_capture_on_commit_callbacks
):
    _, listing = listed
    order = _order(listing, Order.Status.CONFIRMED)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(IllegalTransition):
            order_transition(order, Order.Status.REJECTED, error="late")
    order.refresh_from_db()
    assert order.status == Order.Status.CONFIRMED and order.error == "" and order_signals == []

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order_transition(order, Order.Status.REFUNDED, error="")
        assert order_signals == [], "nothing is announced before the change commits"
    for callback in callbacks:
        callback()
    assert Order.objects.get(pk=order.pk).status == Order.Status.REFUNDED
    assert order_signals == [{"order_id": order.pk, "status": "refunded", "previous": "confirmed"}]

    # Staying put saves the fields and announces nothing; a dropped settlement confirms it again.
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order, Order.Status.REFUNDED, error="noted")
        order_transition(order, Order.Status.CONFIRMED)
    assert Order.objects.get(pk=order.pk).error == "noted"
    assert [s["status"] for s in order_signals] == ["refunded", "confirmed"]


def test_a_vanished_order_comes_back_only_as_confirmed(listed):
    _, listing = listed
    order = _order(listing, Order.Status.VANISHED)
    for to in (Order.Status.RECEIPTED, Order.Status.REFUNDED, Order.Status.REJECTED, Order.Status.PENDING):
        with pytest.raises(IllegalTransition):
            order_transition(order, to)
        order.status = Order.Status.VANISHED
    order_transition(order, Order.Status.CONFIRMED)
    assert Order.objects.get(pk=order.pk).status == Order.Status.CONFIRMED


def test_a_listing_moves_only_along_its_map_and_announces_its_dataset(
    listed, listing_signals, django_capture_on_commit_callbacks
):
    dataset, listing = listed
    with pytest.raises(IllegalTransition):
        listing_transition(listing, ChainListing.State.PUBLISHING)
    listing.state = ChainListing.State.PUBLISHED
    with django_capture_on_commit_callbacks(execute=True):
        listing_transition(listing, ChainListing.State.FAILED, error="The chain was reset.")
    listing.refresh_from_db()
    assert listing.state == ChainListing.State.FAILED and listing.error == "The chain was reset."
    assert listing_signals == [
        {"listing_id": listing.pk, "dataset_id": dataset.pk, "state": "failed", "previous": "published"}
    ]


def test_dataset_orderable_gives_the_first_reason_a_dataset_cannot_be_ordered(listed):
    dataset, listing = listed
    buyer = UserFactory(username="transitions-buyer")
    assert dataset_orderable(dataset=dataset, user=buyer) is None
    assert dataset_orderable(dataset=dataset) is None, "anyone, for the pages"
    assert dataset_orderable(dataset=dataset, user=dataset.owner).code == "own_dataset"

    ChainListing.objects.filter(pk=listing.pk).update(operator_ordering_disabled=True)
    assert dataset_orderable(dataset=dataset, user=buyer).code == "ordering_closed"
    ChainListing.objects.filter(pk=listing.pk).update(state=ChainListing.State.PUBLISHING)
    refusal = dataset_orderable(dataset=dataset, user=buyer)
    assert (refusal.code, refusal.detail) == ("not_on_chain", "This dataset is not published on chain yet.")
    assert dataset_orderable(dataset=dataset, user=buyer, listing=None).code == "not_on_chain"
    dataset.validation = Dataset.Validation.INVALID
    assert dataset_orderable(dataset=dataset, user=buyer).code == "dataset_not_valid"
    dataset.status = Dataset.Status.DELISTED
    error = dataset_orderable(dataset=dataset, user=buyer).as_error()
    assert (error.code, error.status) == ("not_listed", 409)
