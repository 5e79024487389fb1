"""The moderator's journey against the whole product (live server, real Celery worker, test
anvil), in a real Chromium and over the REST API: the moderation queue with its filters, approve
and reject with a reason, a report filed by a buyer and answered, a delisting with a reason, all
of it in the audit log — and the delisted dataset cannot be ordered: the pages refuse, the API
refuses, and on chain the datatoken's ordering is closed (a direct ``buyAndOrder`` from a funded
key reverts with ``OrderingClosed``)."""

from __future__ import annotations

import re

import pytest
import requests

from chain.models import ChainListing, Order
from chain.units import epsilon_to_units
from chain.wrappers import Datatoken
from compute_to_data.models import ComputeJob
from marketplace.models import Dataset, ModerationLogEntry, Report
from tests.browser_support import DESKTOP, FACTORY_PASSWORD, log_in, shot
from tests.chain.conftest import DELTA_1E5
from tests.chain.conftest import Dataset as ChainDataset
from tests.factories import make_dataset

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chain,
    pytest.mark.django_db(transaction=True),
]

REPORT = "The free-text notes column looks like it could identify patients."
ANSWER = "Confirmed with the provider; delisting until the column is removed."
DELIST = "Possible re-identification risk in the free-text notes (see report)."
APPROVE = "Schema bounds are coarse and the description is clear."
REJECT = "No description of how the data was collected or of its consent basis."


def _pending(stack) -> tuple[Dataset, Dataset]:
    meters = make_dataset(
        owner=stack.provider,
        title="Smart meter readings",
        description="Half-hourly electricity use of 800 homes.",
        tags=("energy",),
        status=Dataset.Status.PENDING_REVIEW,
    )
    loans = make_dataset(
        owner=stack.provider,
        title="Consumer loan applications",
        description="",
        tags=("finance",),
        status=Dataset.Status.PENDING_REVIEW,
    )
    return meters, loans


def _ordering_closed_on_chain(stack, listing: ChainListing) -> None:
    """The datatoken refuses orders: ``orderingOpen()`` is false and a direct buyAndOrder from a
    funded key (not the marketplace's) reverts with ``OrderingClosed``."""
    datatoken = Datatoken(stack.chain.w3, listing.datatoken_address)
    assert datatoken.operator_ordering_disabled() is True
    assert datatoken.ordering_open() is False
    token = ChainDataset(
        nft=None,
        datatoken=stack.chain.contract("Datatoken", listing.datatoken_address),
        owner=None,
        params={},
        receipt=None,
    )
    buyer = stack.chain.accounts.buyer2  # funded with test USDC by the session's chain fixture
    error, _args = stack.chain.revert(
        buyer,
        stack.chain.buy_fn(token, buyer, epsilon=epsilon_to_units(1), delta=DELTA_1E5, algorithm=b"\x11" * 32),
    )
    assert error == "OrderingClosed"


@pytest.mark.browser
def test_moderator_filters_approves_rejects_answers_a_report_and_delists(stack, browser):
    base = stack.url
    listed = stack.listed(title="Cardiology outpatients")
    listing = ChainListing.objects.get(dataset=listed)
    assert Datatoken(stack.chain.w3, listing.datatoken_address).ordering_open() is True
    meters, loans = _pending(stack)

    # --- a buyer reports the listed dataset from its page ------------------------------------------
    buyer_ctx = browser.new_context(viewport=DESKTOP)
    buyer = buyer_ctx.new_page()
    log_in(buyer, base, stack.buyer.username)
    buyer.goto(f"{base}/datasets/{listed.pk}/")
    buyer.get_by_text("Report this listing").click()
    buyer.get_by_label("What is wrong with this listing?").fill(REPORT)
    buyer.get_by_role("button", name="Send report").click()
    buyer.get_by_text("Thank you. The moderators have your report.").wait_for()
    report = Report.objects.get(dataset=listed)

    # --- the moderation queue with its filters ----------------------------------------------------
    admin_ctx = browser.new_context(viewport=DESKTOP)
    admin = admin_ctx.new_page()
    log_in(admin, base, stack.staff.username)
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Moderation").click()
    admin.wait_for_url(f"{base}/moderation/")
    items = admin.locator(".queue-item")
    assert items.count() == 2  # pending review by default
    assert admin.get_by_role("heading", name="2 datasets").is_visible()
    admin.get_by_label("Title or owner").fill("meter")
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url(re.compile(r"q=meter"))
    assert items.count() == 1 and "Smart meter readings" in items.inner_text()

    # --- approve one, with a reason ---------------------------------------------------------------------
    items.get_by_label("Reason to approve").fill(APPROVE)
    items.get_by_role("button", name="Approve").click()
    admin.get_by_text("“Smart meter readings”: Approved: the dataset is now listed.").wait_for()
    assert "q=meter" in admin.url  # back on the same filtered queue

    # --- reject one, with a reason; a reason is required ------------------------------------------------
    admin.get_by_label("Title or owner").fill("loan")
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url(re.compile(r"q=loan"))
    loan_item = items.filter(has_text="Consumer loan applications")
    loan_item.get_by_role("button", name="Reject").click()  # empty reason: the browser refuses
    assert loan_item.get_by_label("Reason to reject").evaluate("el => el.validity.valueMissing")
    assert Dataset.objects.get(pk=loans.pk).status == Dataset.Status.PENDING_REVIEW
    loan_item.get_by_label("Reason to reject").fill(REJECT)
    loan_item.get_by_role("button", name="Reject").click()
    admin.get_by_text("“Consumer loan applications”: Rejected.").wait_for()

    # --- reports: filter the queue to reported listings, answer the report ------------------------------
    admin.get_by_label("Title or owner").fill("")
    admin.get_by_label("Status").select_option("listed")
    admin.get_by_label("Reported only").check()
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url(re.compile(r"reported=on"))
    assert items.count() == 1 and "1 open report" in items.inner_text()
    reports = admin.locator("section", has=admin.get_by_role("heading", name="Open reports"))
    assert REPORT in reports.inner_text() and stack.buyer.username in reports.inner_text()
    shot(admin, "moderation-queue-reported")
    reports.get_by_label("Answer").fill(ANSWER)
    reports.get_by_role("button", name="Resolve").click()
    admin.get_by_text("Report resolved.").wait_for()
    report.refresh_from_db()
    assert report.status == Report.Status.RESOLVED and report.resolution == ANSWER

    # --- delist the published dataset, with a reason -----------------------------------------------------
    admin.get_by_label("Reported only").uncheck()
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url(re.compile(r"status=listed"))
    cardiology = items.filter(has_text="Cardiology outpatients")
    cardiology.get_by_label("Reason to delist").fill(DELIST)
    cardiology.get_by_role("button", name="Delist").click()
    admin.get_by_text("“Cardiology outpatients”: Delisted: the dataset is hidden from the catalogue.").wait_for()
    listed.refresh_from_db()
    assert listed.status == Dataset.Status.DELISTED

    # --- the queue's other filters: everything, and each state ---------------------------------------
    admin.get_by_label("Status").select_option("all")
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url(re.compile(r"status=all"))
    assert items.count() == 3
    shot(admin, "moderation-queue-all")

    # --- the audit log has every step, with the reasons ------------------------------------------------
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    admin.wait_for_url(f"{base}/moderation/log/")
    log = admin.get_by_role("table")
    expected = [
        ("Cardiology outpatients", "Delisted", "Listed → Delisted", DELIST),
        ("Cardiology outpatients", "Report resolved", "Listed", ANSWER),
        ("Consumer loan applications", "Rejected", "Pending review → Rejected", REJECT),
        ("Smart meter readings", "Approved", "Pending review → Listed", APPROVE),
        ("Cardiology outpatients", "Reported", "Listed", REPORT),
    ]
    rows = log.locator("tbody tr")
    for i, (title, action, status, reason) in enumerate(expected):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[1:] == [title, cells[2], action, status, reason], cells
    assert stack.staff.username in rows.nth(0).inner_text()
    shot(admin, "audit-log")

    # --- the delisted dataset cannot be ordered: chain, pages, API -------------------------------------
    stack.wait_for(lambda: ChainListing.objects.get(pk=listing.pk).operator_ordering_disabled)
    _ordering_closed_on_chain(stack, listing)
    admin.goto(f"{base}/datasets/{listed.pk}/")
    chain_panel = admin.locator("#chain")
    assert chain_panel.get_by_text("Ordering closed", exact=True).is_visible()
    assert not admin.get_by_role("button", name="Get a quote").count()
    # The buyer: gone from the catalogue, its page is not found, and a job form posted from a page
    # opened before the delisting is refused.
    buyer.goto(f"{base}/")
    assert not buyer.get_by_role("link", name="Cardiology outpatients").count()
    assert buyer.goto(f"{base}/datasets/{listed.pk}/").status == 404
    token = next(c["value"] for c in buyer_ctx.cookies() if c["name"] == "csrftoken")
    refused = buyer_ctx.request.post(
        f"{base}/datasets/{listed.pk}/job/",
        form={"algorithm": "dp-statistics", "epsilon": "0.5", "delta": "0.00001", "intent": "pay"},
        headers={"X-CSRFToken": token, "Referer": f"{base}/datasets/{listed.pk}/"},
    )
    assert refused.status == 404
    api = requests.Session()
    api_token = api.post(
        f"{base}/api/v1/auth/token/", data={"username": stack.buyer.username, "password": FACTORY_PASSWORD}
    ).json()["token"]
    answer = api.post(
        f"{base}/api/v1/jobs/",
        json={"dataset": listed.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.5}},
        headers={"Authorization": f"Token {api_token}"},
    )
    assert answer.status_code == 404, answer.text
    assert not Order.objects.exists() and not ComputeJob.objects.exists()
    # The provider sees why, in the moderation history on their dataset page.
    provider_ctx = browser.new_context(viewport=DESKTOP)
    provider = provider_ctx.new_page()
    log_in(provider, base, stack.provider.username)
    provider.goto(f"{base}/datasets/{listed.pk}/")
    history = provider.locator("section", has=provider.get_by_role("heading", name="Moderation history"))
    assert DELIST in history.inner_text()
    for ctx in (buyer_ctx, admin_ctx, provider_ctx):
        ctx.close()


def test_moderation_journey_over_the_api(stack):
    api = f"{stack.url}/api/v1"

    def session(user) -> requests.Session:
        s = requests.Session()
        answer = s.post(f"{api}/auth/token/", data={"username": user.username, "password": FACTORY_PASSWORD})
        s.headers["Authorization"] = f"Token {answer.json()['token']}"
        return s

    listed = stack.listed(title="Cardiology outpatients")
    listing = ChainListing.objects.get(dataset=listed)
    meters, loans = _pending(stack)
    staff, buyer = session(stack.staff), session(stack.buyer)

    # Only moderators see the queue.
    assert buyer.get(f"{api}/moderation/queue/").status_code == 403
    queue = staff.get(f"{api}/moderation/queue/").json()
    assert {d["id"] for d in queue["results"]} == {meters.pk, loans.pk}
    queue = staff.get(f"{api}/moderation/queue/", params={"q": "meter"}).json()
    assert [d["id"] for d in queue["results"]] == [meters.pk]

    # Approve and reject, each with a reason; no reason, no move; an illegal move answers 409.
    assert staff.post(f"{api}/datasets/{meters.pk}/approve/", json={}).status_code == 400
    approved = staff.post(f"{api}/datasets/{meters.pk}/approve/", json={"reason": APPROVE})
    assert approved.status_code == 200 and approved.json()["status"] == "listed", approved.text
    assert staff.post(f"{api}/datasets/{meters.pk}/approve/", json={"reason": APPROVE}).status_code == 409
    rejected = staff.post(f"{api}/datasets/{loans.pk}/reject/", json={"reason": REJECT})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert buyer.post(f"{api}/datasets/{listed.pk}/delist/", json={"reason": "no"}).status_code in (403, 404)

    # A buyer reports; the queue's "reported" filter finds it; a moderator answers.
    filed = buyer.post(f"{api}/datasets/{listed.pk}/reports/", json={"reason": REPORT})
    assert filed.status_code == 201, filed.text
    reported = staff.get(f"{api}/moderation/queue/", params={"status": "listed", "reported": "true"}).json()
    assert [(d["id"], d["open_reports"]) for d in reported["results"]] == [(listed.pk, 1)]
    resolved = staff.post(
        f"{api}/moderation/reports/{filed.json()['id']}/resolve/", json={"resolution": ANSWER, "dismiss": False}
    )
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved", resolved.text

    # Delist with a reason; the audit log has every step.
    delisted = staff.post(f"{api}/datasets/{listed.pk}/delist/", json={"reason": DELIST})
    assert delisted.status_code == 200 and delisted.json()["status"] == "delisted"
    log = staff.get(f"{api}/moderation/log/").json()["results"]
    assert [(e["dataset"], e["action"], e["reason"]) for e in log[:5]] == [
        (listed.pk, "delist", DELIST),
        (listed.pk, "resolve_report", ANSWER),
        (listed.pk, "report", REPORT),
        (loans.pk, "reject", REJECT),
        (meters.pk, "approve", APPROVE),
    ]
    assert ModerationLogEntry.objects.filter(dataset=listed, action="delist", actor=stack.staff).exists()

    # The delisted dataset cannot be ordered: closed on chain, refused by the API.
    stack.wait_for(lambda: ChainListing.objects.get(pk=listing.pk).operator_ordering_disabled)
    _ordering_closed_on_chain(stack, listing)
    chain_state = staff.get(f"{api}/datasets/{listed.pk}/chain/").json()
    assert chain_state["operator_ordering_disabled"] is True
    job = {"dataset": listed.pk, "algorithm": "dp-statistics", "parameters": {"epsilon": 0.5}}
    assert buyer.post(f"{api}/jobs/quote/", json=job).status_code == 404
    assert buyer.post(f"{api}/jobs/", json=job).status_code == 404
    assert requests.get(f"{api}/datasets/", params={"q": "cardiology"}).json()["count"] == 0
    assert not Order.objects.exists() and not ComputeJob.objects.exists()
