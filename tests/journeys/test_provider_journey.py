"""The provider's journey in a real Chromium, against the whole product (live server, a real
Celery worker, the test anvil): sign up (a managed wallet is made), top it up, upload a CSV,
confirm the schema, set the price and the privacy budget, publish on chain, submit and see
"Pending review", get approved and see "Listed"; then a buyer runs a job and places orders over
the API, and the provider's dashboard shows the job, the earnings (paid, in escrow, refunded) and
the budget left per dataset, as charts with their tables."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import requests
from rest_framework.authtoken.models import Token

from chain.models import ChainListing, Order, Wallet
from chain.services.orders import order_refund
from chain.wrappers import Datatoken
from compute_to_data.models import ComputeJob, PrivacyBudget
from marketplace.models import Dataset
from tests.browser_support import DESKTOP, FACTORY_PASSWORD, PHONE, confirm_email, log_in, shot
from tests.compute_to_data.support import training_csv

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.chain,
    pytest.mark.django_db(transaction=True),
]

USERNAME = "heartclinic"
PASSWORD = "a sturdy passphrase 42"
TITLE = "Outpatient dosing study"
CHARTS = ("earnings-chart", "budget-chart", "jobs-chart")


def cell(row, column: str) -> str:
    return row.locator(f"[data-col='{column}']").inner_text().strip()


def buyer_api(stack):
    token, _ = Token.objects.get_or_create(user=stack.buyer)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token.key}"

    def post(path: str, body: dict) -> dict:
        response = session.post(f"{stack.url}/api/v1/{path}", json=body, timeout=30)
        assert response.status_code in (201, 202), response.text
        return response.json()

    return post


def test_provider_publishes_gets_listed_and_follows_jobs_earnings_and_budget_on_the_dashboard(stack, browser):
    base = stack.url
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()

    # --- sign up: the account comes with a managed wallet, topped up with test funds -------------
    page.goto(f"{base}/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Email").fill("data@heartclinic.example")
    page.get_by_label("Organisation").fill("Regional Heart Clinic")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_text(f"Welcome, {USERNAME}").wait_for()
    # Submitting a dataset for review needs a confirmed e-mail: follow the link sign-up mailed.
    confirm_email(page, base, "data@heartclinic.example")
    wallet = Wallet.objects.get(user__username=USERNAME, kind=Wallet.Kind.MANAGED)
    page.get_by_role("link", name=USERNAME).click()
    wallets = page.locator("[data-wallets-table]")
    assert wallets.get_by_text(wallet.address).is_visible()
    assert "Managed" in wallets.inner_text()
    page.get_by_role("button", name="Top up with test funds").click()
    page.get_by_text("Test funds sent to your managed wallet").wait_for()
    assert stack.chain.w3.eth.get_balance(wallet.address) > 0

    # --- the dashboard before anything is published says what to do -------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    page.get_by_text("You have not published any data yet").wait_for()
    assert page.locator("canvas").count() == 0

    # --- upload with price and privacy budget, confirm the schema --------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Publish").click()
    page.get_by_label("Data file").set_input_files(
        files=[{"name": "dosing.csv", "mimeType": "text/csv", "buffer": training_csv()}]
    )
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Description").fill("Doses and outcomes of **400** outpatients, one row per patient.")
    page.get_by_label("Tags").fill("health, dosing")
    page.get_by_label("Price", exact=True).fill("12.5")
    page.get_by_label("Total epsilon (ε)").fill("8")
    page.get_by_label("Epsilon per job").fill("2")
    page.get_by_role("button", name="Upload and continue").click()
    page.wait_for_url(re.compile(r"/datasets/\d+/schema/$"))
    dataset_id = int(re.search(r"/datasets/(\d+)/schema/", page.url).group(1))
    page.get_by_role("heading", name="Confirm the schema").wait_for()
    page.get_by_label("Min of age").fill("18")
    page.get_by_label("Max of age").fill("100")
    # The row count becomes public: the provider declares a rounded one.
    page.get_by_label("Public row count (about how many rows)").fill("400")
    page.get_by_role("button", name="Confirm schema").click()
    page.wait_for_url(f"{base}/datasets/{dataset_id}/")
    page.get_by_text("Schema confirmed.").wait_for()
    stack.wait_for(lambda: Dataset.objects.get(pk=dataset_id).validation == Dataset.Validation.VALID)

    # --- publish on chain from the dataset page: one transaction from the managed wallet ----------
    page.goto(f"{base}/datasets/{dataset_id}/")
    chain_panel = page.locator("#chain")
    chain_panel.get_by_role("button", name="Publish on chain").click()
    chain_panel.locator(".badge-chain-published").wait_for(timeout=90_000)  # the panel follows the transaction
    listing = ChainListing.objects.get(dataset_id=dataset_id)
    assert listing.owner_address == wallet.address
    assert "12.5 USDC" in chain_panel.inner_text()
    assert "ε 8 left" in chain_panel.inner_text()

    # --- submit for review: "Pending review" --------------------------------------------------------
    page.get_by_role("button", name="Submit for review").click()
    page.get_by_text("Submitted for review.").wait_for()
    assert page.locator(".head-status .badge").inner_text() == "Pending review"
    shot(page, "provider-pending-review")

    # --- a moderator approves it; the provider sees "Listed" ------------------------------------
    admin_context = browser.new_context(viewport=DESKTOP)
    admin = admin_context.new_page()
    log_in(admin, base, stack.staff.username, FACTORY_PASSWORD)
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Moderation").click()
    item = admin.locator(".queue-item", has_text=TITLE)
    item.get_by_label("Reason to approve").fill("Schema bounds are coarse; no identifiers.")
    item.get_by_role("button", name="Approve").click()
    admin.get_by_text("Approved: the dataset is now listed.").wait_for()
    admin_context.close()
    page.reload()
    assert page.locator(".head-status .badge").inner_text() == "Listed"
    datatoken = Datatoken(stack.chain.w3, listing.datatoken_address)
    stack.wait_for(datatoken.ordering_open)  # the operator opened ordering on chain

    # --- a buyer runs a job, and places two orders: one stays in escrow, one is refunded ----------
    post = buyer_api(stack)
    job = post(
        "jobs/",
        {"dataset": dataset_id, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.5, "columns": ["age"]}},
    )
    stack.wait_for(
        lambda: ComputeJob.objects.select_related("order").get(pk=job["id"]).order.status == Order.Status.RECEIPTED,
        timeout=180,
    )
    job = ComputeJob.objects.get(pk=job["id"])
    assert job.status == ComputeJob.Status.FINISHED
    order = {"dataset": dataset_id, "delta": 1e-5, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.3}}
    escrowed = post("orders/", {**order, "epsilon": "0.3"})
    stack.wait_for(lambda: Order.objects.get(pk=escrowed["id"]).status == Order.Status.CONFIRMED)
    refunded = post("orders/", {**order, "epsilon": "0.2"})
    stack.wait_for(lambda: Order.objects.get(pk=refunded["id"]).status == Order.Status.CONFIRMED)
    order_refund(order=Order.objects.get(pk=refunded["id"]))  # the operator refunds it (the worker sends it)
    stack.wait_for(lambda: Order.objects.get(pk=refunded["id"]).status == Order.Status.REFUNDED)

    # --- the dashboard: jobs on their data, earnings and budget left, as charts and tables ----------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My datasets").click()
    page.get_by_role("link", name="Dashboard: jobs, earnings, budget").click()
    page.wait_for_url(f"{base}/me/dashboard/")
    page.get_by_role("heading", name="Provider dashboard").wait_for()
    page.wait_for_function(
        "ids => ids.every(id => window.Chart && window.Chart.getChart(document.getElementById(id)))", arg=CHARTS
    )
    # 12.5 USDC a job, 2.5 % fee: the receipt paid the provider 12.1875; 12.5 in escrow; 12.5 refunded.
    assert page.locator("[data-total='paid']").inner_text() == "12.1875 USDC"
    assert page.locator("[data-total='in_escrow']").inner_text() == "12.5 USDC"
    assert page.locator("[data-total='refunded']").inner_text() == "12.5 USDC"
    assert page.locator("[data-total='jobs']").inner_text() == "1"

    earnings = page.locator(f"#earnings-table tr[data-dataset='{dataset_id}']")
    assert earnings.locator("th").inner_text() == TITLE
    assert cell(earnings, "paid") == "12.1875 USDC"
    assert cell(earnings, "fees") == "0.3125 USDC"
    assert cell(earnings, "in_escrow") == "12.5 USDC"
    assert cell(earnings, "refunded") == "12.5 USDC"

    spent = PrivacyBudget.objects.get(dataset_id=dataset_id).epsilon_spent
    assert Decimal("0") < spent <= Decimal("0.5") and spent == job.epsilon_spent
    budget = page.locator(f"#budget-table tr[data-dataset='{dataset_id}']")
    assert Decimal(cell(budget, "total")) == 8
    assert Decimal(cell(budget, "spent")) == spent
    assert Decimal(cell(budget, "reserved")) == 0
    assert Decimal(cell(budget, "left")) == 8 - spent
    # The chain also holds the epsilon of the order still in escrow (0.3); the refund gave its 0.2 back.
    assert Decimal(cell(budget, "left_on_chain")) == 8 - spent - Decimal("0.3")
    assert cell(budget, "jobs") == "1"

    today = page.locator("#jobs-table tbody tr")
    assert today.count() == 1
    assert today.locator("td").last.text_content() == "1"
    page.get_by_text("Data table: jobs per day").click()
    assert today.locator("th time").get_attribute("datetime") == job.created_at.date().isoformat()

    recent = page.locator(f"#recent-jobs tr[data-job='{job.pk}']")
    assert recent.get_by_role("cell", name=stack.buyer.username).is_visible()
    assert recent.get_by_role("cell", name="DP summary statistics").is_visible()
    assert "ε 0.5" in recent.inner_text()
    assert recent.locator(".badge-job-finished").is_visible()
    shot(page, "provider-dashboard")
    page.set_viewport_size(PHONE)
    shot(page, "provider-dashboard-mobile")
    page.set_viewport_size(DESKTOP)

    # The receipt link checks the job's receipt against the chain.
    recent.get_by_role("link", name="Verify receipt").click()
    page.wait_for_url(f"{base}/jobs/{job.pk}/verify/")
    page.get_by_role("heading", name="Verified").wait_for()

    # --- the same figures over the API ----------------------------------------------------------
    token, _ = Token.objects.get_or_create(user=Dataset.objects.get(pk=dataset_id).owner)
    body = requests.get(
        f"{base}/api/v1/me/dashboard/", headers={"Authorization": f"Token {token.key}"}, timeout=30
    ).json()
    assert body["totals"][0] == {
        "token": "USDC",
        "paid": "12.187500",
        "fees": "0.312500",
        "in_escrow": "12.500000",
        "refunded": "12.500000",
        "orders_receipted": 1,
        "orders_in_escrow": 1,
        "orders_refunded": 1,
    }
    assert [d["id"] for d in body["datasets"]] == [dataset_id]
    context.close()
