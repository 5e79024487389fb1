"""The chain in the server-rendered pages, on a real anvil: publishing from the dataset page, the
job form (quote, then pay and run in one transaction), the job and order pages and the wallet
section."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from eth_account import Account

from chain import client
from chain.models import ChainListing, ChainTransaction, Order, Wallet
from chain.services.orders import RELEASE_TEXT
from compute_to_data.models import ComputeJob
from frontend.templatetags.frontend_tags import plain
from marketplace.models import Dataset
from tests.factories import UserFactory, make_dataset

pytestmark = [pytest.mark.chain, pytest.mark.django_db(transaction=True)]

# What the job form posts for a small DP logistic regression on make_dataset's table (age, income,
# group): every field of the form, as a browser sends it.
JOB = {
    "algorithm": "dp-logistic-regression",
    "target": "group",
    "epochs": "1",
    "batch_size": "8",
    "learning_rate": "0.5",
    "max_grad_norm": "1",
    "private_metrics": "on",
    "epsilon": "0.5",
    "delta": "0.000001",
    "accountant": "rdp",
}


@pytest.fixture
def compute_settings(settings):
    """Sandboxes work under a folder the unprivileged sandbox uid can traverse (pytest's tmp_path
    is 0700), one per test, removed afterwards."""
    base = Path(tempfile.gettempdir()) / "ppdx-compute-tests"
    base.mkdir(mode=0o711, exist_ok=True)
    os.chmod(base, 0o711)  # noqa: S103  (traversable, not listable, by the sandbox uid)
    work = base / uuid.uuid4().hex
    settings.COMPUTE_WORK_DIR = str(work)
    settings.COMPUTE_THREADS = 2
    yield settings
    shutil.rmtree(work, ignore_errors=True)


def client_as(user) -> Client:
    page = Client()
    if user is not None:
        page.force_login(user)
    return page


def text(response) -> str:
    return response.content.decode()


def field_block(body: str, name: str) -> str:
    """The markup of one parameter's field group on the job form."""
    start = body.rindex("<div", 0, body.index(f'data-param="{name}"'))
    end = body.find("data-param=", body.index(f'data-param="{name}"') + 1)
    return body[start : body.rindex("<div", 0, end) if end != -1 else len(body)]


def publish_from_page(provider, staff) -> Dataset:
    dataset = make_dataset(owner=provider, price="5", status=Dataset.Status.LISTED, moderator=staff)
    page = client_as(provider)
    before = text(page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Not published" in before and "Publish on chain" in before
    response = page.post(reverse("frontend:dataset-publish", args=[dataset.pk]), follow=True)
    assert response.status_code == 200
    assert "Published on chain" in text(response), text(response)
    return dataset


def job_url(dataset: Dataset) -> str:
    return reverse("frontend:dataset-job", args=[dataset.pk])


def test_publish_quote_pay_and_follow_the_job_and_its_order_from_the_pages(people, compute_settings):
    provider, buyer, staff = people
    dataset = publish_from_page(provider, staff)
    listing = ChainListing.objects.get(dataset=dataset)
    assert listing.state == ChainListing.State.PUBLISHED

    # The provider's page: the chain panel with the addresses and the budget, and no job form.
    owner_page = client_as(provider)
    body = text(owner_page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert listing.datatoken_address in body and listing.nft_address in body
    assert "ε 0 of 10 ordered" in body and "ε 10 left" in body and "δ = 0.00001" in body
    assert "Publish on chain" not in body
    assert "Run a compute job" not in body and "Get a quote" not in body and "Pay and run" not in body
    refused = owner_page.post(job_url(dataset), {**JOB, "intent": "pay"}, follow=True)
    assert "You cannot order compute on your own dataset." in text(refused)
    assert not ComputeJob.objects.exists() and not Order.objects.exists()
    assert "Published" in text(owner_page.get(reverse("frontend:my-datasets")))

    # The buyer: the form with the dataset's privacy defaults, a quote, then one transaction.
    page = client_as(buyer)
    body = text(page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Run a compute job" in body
    assert "Get a quote" in body and "Pay and run (one transaction)" in body
    assert 'name="epsilon" value="1"' in body and 'name="delta" value="0.00001"' in body
    assert '<option value="group">group (categorical)</option>' in body  # a target to choose
    quote = page.post(job_url(dataset), {**JOB, "intent": "quote"})
    assert quote.status_code == 200
    body = text(quote)
    buyer_wallet = Wallet.objects.get(user=buyer, kind="managed").address
    assert "cannot go ahead" not in body
    assert "Your wallet can pay for this job and the budget has room for it." in body
    assert "<strong>5 USDC</strong>" in body and "0.125 USDC" in body
    assert "ε 0.5, δ 0.000001" in body
    assert "ε 10 now; <strong>ε 9.5</strong> after this job" in body
    assert buyer_wallet in body and "holds 1000 USDC" in body
    assert RELEASE_TEXT in body
    assert not Order.objects.exists() and not ComputeJob.objects.exists()

    response = page.post(job_url(dataset), {**JOB, "intent": "pay"})
    job = ComputeJob.objects.get()
    order = Order.objects.get()
    assert job.order_id == order.pk and job.buyer == buyer
    assert response.status_code == 302 and response.url == reverse("frontend:job", args=[job.pk]) + "#job-status"
    # The payment was confirmed on chain; with eager workers the job then ran to its end and its
    # receipt settled the order.
    assert order.confirmed_at is not None and order.chain_order_id is not None, order.error
    assert job.status == ComputeJob.Status.FINISHED, job.reason
    assert order.status == Order.Status.RECEIPTED, order.error
    assert job.parameters["target"] == "group" and job.epsilon == order.epsilon == Decimal("0.5")

    body = text(page.get(response.url))
    assert "Job created. It runs as soon as the payment is confirmed on chain." in body
    assert f"Job {job.pk}: DP logistic regression" in body
    assert 'data-job-status="finished"' in body and "See the results" in body
    assert "ε = 0.5" in body and "δ = 0.000001" in body and job.params_hash in body
    assert f'<a href="{reverse("frontend:order", args=[order.pk])}">Order {order.pk}</a>' in body
    assert "Receipt recorded on chain" in body
    assert "data-job-api=" not in body  # nothing left to follow

    body = text(page.get(reverse("frontend:order", args=[order.pk])))
    assert 'data-order-status="receipted"' in body and "Receipt recorded, payment released" in body
    assert f"<dd>{order.chain_order_id}</dd>" in body
    assert order.tx_hash in body and buyer_wallet in body and "5 USDC" in body
    assert "ε = 0.5" in body and "δ = 0.000001" in body and order.algorithm_hash == job.params_hash
    assert job.params_hash in body
    assert f'<a href="{reverse("frontend:job", args=[job.pk])}">Job {job.pk}</a>' in body
    assert "data-poll=" not in body  # nothing left to wait for

    mine = text(page.get(reverse("frontend:my-orders")))
    assert dataset.title in mine and "Receipted" in mine and reverse("frontend:order", args=[order.pk]) in mine
    assert reverse("frontend:job", args=[job.pk]) in mine
    assert reverse("frontend:job", args=[job.pk]) in text(page.get(reverse("frontend:my-jobs")))
    # The unused epsilon went back to the budget on chain: what is ordered is what the job spent.
    body = text(page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert f"ε {plain(job.epsilon_spent)} of 10 ordered" in body
    assert "Your jobs on this dataset" in body and reverse("frontend:job", args=[job.pk]) in body

    # Who may see the order page (and the job's): the buyer, the dataset's owner, staff; nobody else.
    assert "ordered by <strong>buyer</strong>" in text(owner_page.get(reverse("frontend:order", args=[order.pk])))
    assert "run by <strong>buyer</strong>" in text(owner_page.get(reverse("frontend:job", args=[job.pk])))
    assert client_as(staff).get(reverse("frontend:order", args=[order.pk])).status_code == 200
    anonymous = Client().get(reverse("frontend:order", args=[order.pk]))
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("frontend:login"))
    stranger = client_as(UserFactory(username="stranger"))
    assert stranger.get(reverse("frontend:order", args=[order.pk])).status_code == 404
    assert stranger.get(reverse("frontend:job", args=[job.pk])).status_code == 404
    assert "You have not ordered any compute yet." in text(stranger.get(reverse("frontend:my-orders")))


def test_a_buyer_without_funds_sees_why_and_no_order_is_made(people):
    provider, buyer, staff = people
    dataset = publish_from_page(provider, staff)
    page = client_as(UserFactory(username="poor"))

    quote = page.post(job_url(dataset), {**JOB, "intent": "quote"})
    assert quote.status_code == 200
    body = text(quote)
    assert "This job cannot go ahead" in body
    assert "The wallet holds 0.000000 USDC; the job costs 5.000000." in body
    assert "too little ether" in body

    paid = page.post(job_url(dataset), {**JOB, "intent": "pay"})
    assert paid.status_code == 409
    assert "Could not run the job." in text(paid) and "holds 0.000000 USDC" in text(paid)
    assert not ComputeJob.objects.exists()
    assert not Order.objects.exists()
    assert not ChainTransaction.objects.filter(purpose=ChainTransaction.Purpose.ORDER).exists()

    # The dataset's caps and the parameters are checked beside the fields before anything reaches
    # the chain.
    for data, field, message in [
        ({"epsilon": "1.5"}, "epsilon", "&#x27;epsilon&#x27; must be at most 1 (the dataset&#x27;s cap)."),
        ({"delta": "0.001"}, "delta", "&#x27;delta&#x27; must be at most "),
        ({"epsilon": "0"}, "epsilon", "&#x27;epsilon&#x27; must be greater than 0."),
        ({"delta": "0"}, "delta", "&#x27;delta&#x27; must be greater than 0."),
    ]:
        for intent in ("quote", "pay"):
            bad = page.post(job_url(dataset), {**JOB, **data, "intent": intent})
            assert bad.status_code == 400, (data, intent)
            body = text(bad)
            assert "Please correct the highlighted fields." in body
            assert message in field_block(body, field) and "field-invalid" in field_block(body, field)
    bad = page.post(job_url(dataset), {**JOB, "algorithm": "raw-rows", "intent": "pay"})
    assert bad.status_code == 400
    assert "Could not run the job.</strong> Choose one of the algorithms." in text(bad)
    assert not ComputeJob.objects.exists()
    assert not Order.objects.exists()
    assert not ChainTransaction.objects.filter(purpose=ChainTransaction.Purpose.ORDER).exists()


def test_wallet_section_lists_wallets_with_balances_tops_up_and_switches_primary(people):
    provider, buyer, staff = people
    managed = Wallet.objects.get(user=buyer, kind="managed")
    page = client_as(buyer)
    body = text(page.get(reverse("frontend:profile")))
    assert managed.address in body and "Managed" in body and "Primary" in body
    assert "1 ETH" in body and "1000 USDC" in body
    assert "Top up with test funds" in body and "/api/v1/auth/siwe/nonce/" in body
    assert "chain not reachable" not in body

    newcomer = client_as(UserFactory(username="newcomer"))
    assert "0 USDC" in text(newcomer.get(reverse("frontend:profile")))
    response = newcomer.post(reverse("frontend:wallet-faucet"), follow=True)
    assert "Test funds sent to your managed wallet" in text(response)
    assert "1 ETH" in text(response) and "1000 USDC" in text(response)

    own = Wallet.objects.create(
        user=buyer, address=Account.create().address, kind=Wallet.Kind.EXTERNAL, verified_at=timezone.now()
    )
    body = text(page.get(reverse("frontend:profile")))
    assert own.address in body and "Own wallet" in body and "Make primary" in body
    page.post(reverse("frontend:wallet-primary", args=[own.pk]))
    own.refresh_from_db()
    managed.refresh_from_db()
    assert own.is_primary and not managed.is_primary
    assert newcomer.post(reverse("frontend:wallet-primary", args=[own.pk])).status_code == 404


def test_pages_say_the_chain_is_unreachable_instead_of_failing(people, settings):
    provider, buyer, staff = people
    dataset = publish_from_page(provider, staff)
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # nothing listens there
    client.reset_caches()
    page = client_as(buyer)
    body = text(page.get(reverse("frontend:profile")))
    assert "chain not reachable" in body and "The chain node does not answer" in body
    assert "127.0.0.1:9" not in body, "the RPC URL (it can carry an API key) is never shown"
    assert "Top up with test funds" not in body
    # The dataset page reads the listing from the database only.
    assert ChainListing.objects.get(dataset=dataset).datatoken_address in text(
        page.get(reverse("frontend:dataset", args=[dataset.pk]))
    )
    quote = page.post(job_url(dataset), {**JOB, "intent": "quote"})
    assert (
        quote.status_code == 503
        and "The chain node does not answer" in text(quote)
        and "127.0.0.1:9" not in text(quote)
    )


def test_without_a_chain_the_pages_say_so(settings):
    settings.CHAIN_RPC_URL = ""
    client.reset_caches()
    provider = UserFactory(username="provider")
    staff = UserFactory(username="moderator", is_staff=True)
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    page = client_as(provider)
    body = text(page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Not published" in body and "The chain is not configured" in body and "Publish on chain" not in body
    body = text(page.get(reverse("frontend:profile")))
    assert "chain not reachable" in body and "The chain is not configured" in body
    assert Wallet.objects.get(user=provider).address in body
    response = page.post(reverse("frontend:dataset-publish", args=[dataset.pk]), follow=True)
    assert "The chain is not configured" in text(response) and not ChainListing.objects.exists()
    buyer_page = client_as(UserFactory(username="buyer"))
    assert "Get a quote" not in text(buyer_page.get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Not published" in text(page.get(reverse("frontend:my-datasets")))
