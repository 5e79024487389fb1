"""The buyer's journey in a real Chromium, against the whole product (live server, a real Celery
worker running the sandboxed DP runner, the test anvil): search and filter the catalogue, read a
dataset page (schema, mock preview, price, budget left, licence, receipts of past jobs), choose an
algorithm and its parameters with inline validation, get a quote, pay in one transaction from the
managed wallet, follow the job live, read the result page's charts, download a result and verify
the receipt on chain."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from chain.models import ChainListing, ChainTransaction, Order
from chain.services.orders import RELEASE_TEXT
from chain.wrappers import Datatoken
from compute_to_data.models import ComputeJob
from marketplace.models import Dataset
from tests.browser_support import DESKTOP, PHONE, SCREENSHOTS, log_in, shot
from tests.factories import make_dataset

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.chain,
    pytest.mark.django_db(transaction=True),
]

TITLE = "Cardiology outpatients"
# The job's states that only a worker reaches: seeing one without a reload proves the page is live.
WORKER_STATES = ("Preparing the sandbox", "Running", "Publishing results")


def fact(scope, name: str) -> str:
    """The text of the <dd> beside the <dt> called ``name`` in a facts list."""
    term = scope.locator("dt", has_text=re.compile(f"^{re.escape(name)}$"))
    return term.locator("xpath=following-sibling::dd").inner_text()


def test_buyer_finds_a_dataset_pays_for_a_dp_job_and_verifies_its_receipt(stack, browser):
    base = stack.url
    dataset = stack.listed(title=TITLE, price="3", epsilon_total="10", per_job="2")
    make_dataset(
        owner=stack.provider,
        title="Retail basket transactions",
        description="Anonymised supermarket baskets.",
        tags=("retail",),
        price="25",
        licence="proprietary",
        status=Dataset.Status.LISTED,
        moderator=stack.staff,
    )
    listing = ChainListing.objects.get(dataset=dataset)

    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    log_in(page, base, stack.buyer.username)

    # --- search and filter ------------------------------------------------------------------------
    assert page.locator(".card").count() == 2
    page.get_by_label("Search datasets").fill("cardiology")
    page.get_by_label("Search datasets").press("Enter")
    page.wait_for_url(re.compile(r"\?q=cardiology"))
    assert page.locator(".card").count() == 1
    page.get_by_label("Search datasets").fill("")
    page.get_by_label("Max price").fill("10")
    page.get_by_role("textbox", name="Tags").fill("health")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"price_max=10"))
    assert page.get_by_text("1 dataset matches").is_visible()
    shot(page, "catalogue-filtered")
    page.locator(".card").get_by_role("link", name=TITLE).click()
    page.wait_for_url(f"{base}/datasets/{dataset.pk}/")

    # --- the dataset page: schema, mock preview, price, budget left, licence, receipts -----------
    schema = page.locator("section", has=page.get_by_role("heading", name="Schema"))
    for column in ("age", "dose", "site", "score", "label"):
        assert schema.get_by_role("rowheader", name=column).is_visible()
    mock = page.get_by_role("table", name=re.compile("Mock data, first"))
    assert mock.locator("tbody tr").count() == 10
    terms = page.get_by_role("complementary", name="Terms")
    assert terms.locator(".price-big").inner_text() == "3 USDC"
    assert fact(terms, "Licence") == "Creative Commons Attribution 4.0"
    assert terms.get_by_text("Left: ε 10").is_visible()
    receipts = page.locator("#receipts")
    assert receipts.get_by_role("heading", name="Receipts of past jobs").is_visible()
    assert receipts.get_by_text("No receipts yet").is_visible()

    # --- choose an algorithm and its parameters; inline validation -------------------------------
    page.get_by_role("radio", name=re.compile("^DP logistic regression")).check()
    page.get_by_role("heading", name="Parameters of DP logistic regression").wait_for()
    form = page.locator("#job-params")
    form.get_by_label("Target column").select_option("label")
    form.get_by_label("Epochs").fill("2")
    form.get_by_label("Batch size").fill("64")
    epsilon = form.get_by_label("Epsilon (ε)")
    epsilon.fill("5")  # above the per-job cap of 2
    epsilon.blur()
    epsilon_error = page.locator("#job-epsilon_live")
    epsilon_error.wait_for()
    assert epsilon_error.inner_text() == "At most 2."
    assert epsilon.get_attribute("aria-invalid") == "true"
    assert "job-epsilon_live" in epsilon.get_attribute("aria-describedby")
    form.get_by_role("button", name="Get a quote").click()  # refused in the page, nothing sent
    assert page.evaluate("document.activeElement.id") == "job-epsilon"
    assert not form.locator("#quote").count()
    epsilon.fill("1")
    assert epsilon_error.is_hidden()
    assert epsilon.get_attribute("aria-invalid") is None

    # --- a quote before paying: price, epsilon, what will be released ----------------------------
    form.get_by_role("button", name="Get a quote").click()
    quote = page.get_by_role("region", name="Quote")
    quote.wait_for()
    assert quote.get_by_text("Your wallet can pay for this job and the budget has room for it.").is_visible()
    assert fact(quote, "Price") == "3 USDC"
    assert fact(quote, "Privacy requested") == "ε 1, δ 0.00001"
    assert "ε 9 after this job" in fact(quote, "Budget left")
    released = fact(quote, "What you receive")
    assert RELEASE_TEXT in released and "This algorithm releases:" in released
    assert not Order.objects.exists() and not ComputeJob.objects.exists()
    shot(page, "dataset-quote")

    # --- pay in one transaction, then follow the job live -----------------------------------------
    page.get_by_role("button", name="Pay and run (one transaction)").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/"))
    job = ComputeJob.objects.get()
    assert page.get_by_text("Job created.").is_visible()
    assert page.locator("[data-job-field=status]").inner_text() not in WORKER_STATES
    page.evaluate("window.__sameDocument = true")
    # The page follows the job through the API, without reloading, until it ends.
    page.wait_for_function(
        "states => window.__sameDocument === true"
        " && states.includes(document.querySelector('[data-job-field=status]').textContent)",
        arg=list(WORKER_STATES),
        timeout=120_000,
    )
    try:  # the picture is better with some progress on the bar; the run may be too quick for it
        page.wait_for_function(
            "() => Number(document.querySelector('[data-job-field=percent]')?.textContent) > 0", timeout=15_000
        )
    except PlaywrightTimeout:
        pass
    if page.evaluate("window.__sameDocument === true"):
        shot(page, "job-progress")
    results_link = page.get_by_role("link", name="See the results")
    results_link.wait_for(timeout=120_000)  # reloaded once the job ended
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.FINISHED, job.reason
    order = job.order
    # One transaction paid for it: the buyer's buyAndOrder, sent from the managed wallet.
    assert ChainTransaction.objects.filter(order=order, purpose=ChainTransaction.Purpose.ORDER).count() == 1
    assert order.amount_units == Decimal(3_000_000) and order.epsilon == Decimal(1)

    # --- the result page: charts and downloads -----------------------------------------------------
    results_link.click()
    page.wait_for_url(f"{base}/jobs/{job.pk}/result/")
    for canvas in ("loss-chart", "epsilon-chart"):
        drawn = page.evaluate(f"() => !!(window.Chart && Chart.getChart(document.getElementById('{canvas}')))")
        assert drawn, f"{canvas} was not drawn"
    assert page.get_by_role("img", name=re.compile("Line chart of the DP training loss")).is_visible()
    metrics = page.get_by_role("table", name="Metrics and where each number comes from")
    assert metrics.get_by_text("DP-protected and accounted").first.is_visible()
    shot(page, "job-result")
    artifact = job.artifacts.order_by("name").first()
    downloads = page.locator("#downloads")
    with page.expect_download() as download_info:
        downloads.get_by_role("link", name=f"Download {artifact.name}").click()
    body = Path(download_info.value.path()).read_bytes()
    assert hashlib.sha256(body).hexdigest() == artifact.sha256
    assert artifact.sha256 in downloads.inner_text()

    # --- verify the receipt on chain ---------------------------------------------------------------
    stack.wait_for(lambda: Order.objects.get(pk=order.pk).status == Order.Status.RECEIPTED)
    order.refresh_from_db()
    page.get_by_role("link", name="Verify the receipt").click()
    page.wait_for_url(f"{base}/jobs/{job.pk}/verify/")
    page.get_by_role("heading", name="Verified").wait_for()
    states = page.locator(".check-state").all_inner_texts()
    assert states and set(states) == {"matches"}, states
    assert page.get_by_text("Chain order", exact=True).is_visible()
    shot(page, "job-verify")
    datatoken = Datatoken(stack.chain.w3, listing.datatoken_address)
    assert datatoken.order_status(order.chain_order_id) == "receipted"

    # --- back on the dataset page: the receipt is listed; the budget went down -------------------
    page.goto(f"{base}/datasets/{dataset.pk}/")
    row = page.locator("#receipts tbody tr")
    assert row.count() == 1
    assert row.get_by_role("link", name=f"Your job {job.pk}").is_visible()
    assert order.receipt["tx_hash"] in row.inner_text() and order.receipt["result_hash"] in row.inner_text()
    assert "DP logistic regression" in row.inner_text()
    spent = order.epsilon_spent.normalize()
    assert f"ε {spent}" in row.inner_text()
    assert page.get_by_role("complementary", name="Terms").get_by_text(re.compile(r"Left: ε 9")).is_visible()
    page.locator("#receipts").scroll_into_view_if_needed()
    page.locator("#receipts").screenshot(path=str(SCREENSHOTS / "dataset-receipts.png"))

    # --- a visitor sees the receipt too, but not who bought ------------------------------------------
    visitor = browser.new_context(viewport=PHONE).new_page()
    visitor.goto(f"{base}/datasets/{dataset.pk}/")
    public_row = visitor.locator("#receipts tbody tr")
    assert public_row.count() == 1 and order.receipt["tx_hash"] in public_row.inner_text()
    cells = public_row.locator("td").all_inner_texts()
    assert cells[-1] == "Another buyer" and stack.buyer.username not in cells
    assert not visitor.locator("#receipts").get_by_role("link").count()
    assert visitor.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    visitor.context.close()
    context.close()
