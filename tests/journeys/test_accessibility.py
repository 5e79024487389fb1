"""Accessibility and responsiveness of the main pages in a real Chromium: axe-core (from npm,
injected into each page) finds no WCAG 2 A/AA violation and no breach of its best practices; at a
phone's width no page scrolls sideways and the main navigation stays usable (on screen, targets
at least 24 px high); the keyboard reaches the skip link and the search box, and Enter searches.

The pages are the real ones with real content: a dataset published on chain, a compute job that
the Celery worker runs in its sandbox, moderation work waiting, for each kind of user."""

from __future__ import annotations

import re

import pytest

from compute_to_data.models import ComputeJob
from marketplace.models import Dataset
from marketplace.services.moderation import report_create
from tests.browser_support import DESKTOP, FACTORY_PASSWORD, PHONE, axe_load, log_in, shot
from tests.factories import make_dataset

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.chain,
    pytest.mark.django_db(transaction=True),
]

# WCAG 2.0, 2.1 and 2.2, levels A and AA; and axe's best practices (one main landmark, content in
# landmarks, heading levels in order, one h1...).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]

# Elements wider than the viewport that are not inside a horizontally scrolling box.
OVERFLOWING = """() => {
  const width = window.innerWidth;
  const scrolls = el => { for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX; if (o === "auto" || o === "scroll" || o === "hidden") return true; }
    return false; };
  return [...document.querySelectorAll("body *")]
    .filter(el => el.getBoundingClientRect().right > width + 1 && !scrolls(el))
    .slice(0, 8)
    .map(el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + (typeof el.className === "string" && el.className ? "." + el.className.trim().split(/\\s+/).join(".") : "")
      + " right=" + Math.round(el.getBoundingClientRect().right));
}"""


class Audit:
    """Collects every page's problems, so one run reports all of them at once."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.pages: list[str] = []

    def axe(self, page, name: str) -> None:
        axe_load(page)
        violations = page.evaluate(
            "async tags => (await axe.run(document, {runOnly: {type: 'tag', values: tags},"
            " resultTypes: ['violations']})).violations",
            AXE_TAGS,
        )
        self.pages.append(name)
        for v in violations:
            self.problems.append(f"{name} ({page.url}): [{v['impact']}] {v['id']}: {v['help']}\n    {v['helpUrl']}")
            for node in v["nodes"][:6]:
                target = " ".join(str(t) for t in node["target"])
                summary = (node.get("failureSummary") or "").replace("\n", " ")
                self.problems.append(f"    - {target}\n      {node['html'][:200]}\n      {summary[:300]}")

    def phone(self, page, name: str) -> None:
        """At a phone's width: no sideways scrolling, and every link of the main navigation is on
        screen and big enough to tap."""
        page.set_viewport_size(PHONE)
        # Charts redraw to the new width on the next frames (Chart.js follows its box with a ResizeObserver).
        page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 150))))"
        )
        try:
            if not page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"):
                wide = page.evaluate("document.documentElement.scrollWidth")
                self.problems.append(f"{name} ({page.url}): scrolls sideways at 390 px ({wide} px wide)")
                self.problems.extend(f"    - {el}" for el in page.evaluate(OVERFLOWING))
            for link in page.get_by_role("navigation", name="Main").get_by_role("link").all():
                box = link.bounding_box()
                if box is None or box["x"] < 0 or box["x"] + box["width"] > PHONE["width"] or box["height"] < 24:
                    self.problems.append(
                        f"{name}: main navigation link {link.inner_text()!r} not usable at 390 px: {box}"
                    )
        finally:
            page.set_viewport_size(DESKTOP)

    def check(self, page, name: str, *, phone: bool = True) -> None:
        self.axe(page, name)
        if phone:
            self.phone(page, name)

    def assert_clean(self) -> None:
        assert not self.problems, f"{len(self.problems)} problem lines on {len(self.pages)} pages:\n" + "\n".join(
            self.problems
        )


def visit(page, url: str, name: str, audit: Audit, **kwargs) -> None:
    response = page.goto(url)
    assert response is not None and response.status < 400, f"{name}: {url} answered {response and response.status}"
    audit.check(page, name, **kwargs)


def test_main_pages_have_no_wcag_violations_and_fit_a_phone(stack, browser):
    base = stack.url
    audit = Audit()
    dataset = stack.listed(title="Cardiology outpatients", price="3")
    make_dataset(
        owner=stack.provider,
        title="Smart meter readings",
        tags=("energy",),
        status=Dataset.Status.PENDING_REVIEW,
    )
    draft = make_dataset(owner=stack.provider, title="Subscription churn", declare=False)
    report_create(dataset=dataset, reporter=stack.buyer, reason="A column looks identifying.")

    # --- a visitor -------------------------------------------------------------------------------------
    visitor = browser.new_context(viewport=DESKTOP).new_page()
    visit(visitor, f"{base}/", "catalogue (visitor)", audit)
    visit(visitor, f"{base}/?q=cardiology&tags=health&sort=price", "catalogue search", audit)
    visit(visitor, f"{base}/datasets/{dataset.pk}/", "dataset page (visitor)", audit)
    visit(visitor, f"{base}/login/", "login", audit)
    visit(visitor, f"{base}/signup/", "signup", audit)
    response = visitor.goto(f"{base}/no-such-page/")
    assert response.status == 404
    audit.check(visitor, "not found page")
    visitor.context.close()

    # --- the buyer: the job form, a quote, paying; the live job page ------------------------------------
    buyer_ctx = browser.new_context(viewport=DESKTOP)
    buyer = buyer_ctx.new_page()
    log_in(buyer, base, stack.buyer.username)
    audit.check(buyer, "catalogue (signed in)")
    visit(buyer, f"{base}/datasets/{dataset.pk}/", "dataset page with the job form", audit)
    form = buyer.locator("#job-params")
    form.get_by_label("Target column").select_option("label")
    form.get_by_label("Epochs").fill("2")
    form.get_by_label("Epsilon (ε)").fill("9")
    form.get_by_label("Epsilon (ε)").blur()
    buyer.locator("#job-epsilon_live").wait_for()
    audit.axe(buyer, "job form with an inline error")
    form.get_by_label("Epsilon (ε)").fill("1")
    form.get_by_role("button", name="Get a quote").click()
    buyer.get_by_role("region", name="Quote").wait_for()
    audit.check(buyer, "job form with a quote")
    buyer.get_by_role("button", name="Pay and run (one transaction)").click()
    buyer.wait_for_url(re.compile(r"/jobs/\d+/"))
    job = ComputeJob.objects.get()
    audit.axe(buyer, "job page (live)")
    visit(buyer, f"{base}/me/", "profile", audit)
    visit(buyer, f"{base}/me/orders/", "my orders", audit)
    visit(buyer, f"{base}/datasets/new/", "upload", audit)

    # --- the provider -----------------------------------------------------------------------------------
    provider = browser.new_context(viewport=DESKTOP).new_page()
    log_in(provider, base, stack.provider.username)
    visit(provider, f"{base}/me/datasets/", "my datasets", audit)
    visit(provider, f"{base}/datasets/{dataset.pk}/", "dataset page (owner)", audit)
    visit(provider, f"{base}/datasets/{draft.pk}/schema/", "schema confirmation", audit)
    visit(provider, f"{base}/datasets/{dataset.pk}/ledger/", "privacy ledger", audit)
    visit(provider, f"{base}/datasets/{dataset.pk}/commitment/", "commitment check (owner)", audit)
    if provider.request.get(f"{base}/me/dashboard/").status == 200:
        visit(provider, f"{base}/me/dashboard/", "provider dashboard", audit)

    # --- the moderator ------------------------------------------------------------------------------------
    admin = browser.new_context(viewport=DESKTOP).new_page()
    log_in(admin, base, stack.staff.username)
    visit(admin, f"{base}/moderation/", "moderation queue", audit)
    visit(admin, f"{base}/moderation/?status=all&reported=on", "moderation queue (filtered)", audit)
    visit(admin, f"{base}/moderation/log/", "audit log", audit)
    visit(admin, f"{base}/datasets/{dataset.pk}/", "dataset page (moderator)", audit)

    # --- the finished job: its page, results with charts, receipt check, my jobs --------------------------
    stack.wait_for(lambda: ComputeJob.objects.get(pk=job.pk).is_terminal, timeout=150)
    job.refresh_from_db()
    assert job.status == ComputeJob.Status.FINISHED, job.reason
    visit(buyer, f"{base}/jobs/{job.pk}/", "job page (finished)", audit)
    visit(buyer, f"{base}/jobs/{job.pk}/result/", "result page", audit)
    buyer.locator("details.chart-table summary").first.click()
    audit.axe(buyer, "result page with a data table open")
    visit(buyer, f"{base}/jobs/{job.pk}/verify/", "receipt check", audit)
    visit(buyer, f"{base}/me/jobs/", "my jobs", audit)
    visit(buyer, f"{base}/datasets/{dataset.pk}/#receipts", "dataset page with a receipt", audit)
    visit(provider, f"{base}/me/jobs/?role=provider", "jobs on my datasets", audit)

    for ctx in (buyer_ctx, provider.context, admin.context):
        ctx.close()
    audit.assert_clean()


def test_keyboard_reaches_the_skip_link_and_searches_and_the_phone_menu_works(live_server, browser, provider, staff):
    base = live_server.url
    make_dataset(owner=provider, title="Cardiology outpatients", status=Dataset.Status.LISTED, moderator=staff)
    make_dataset(
        owner=provider, title="Urban air quality", tags=("environment",), status=Dataset.Status.LISTED, moderator=staff
    )
    make_dataset(
        owner=provider,
        title="Smart meter readings",
        description="Half-hourly electricity use of 800 homes.",
        tags=("energy",),
        status=Dataset.Status.PENDING_REVIEW,
    )
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(f"{base}/")

    # The first Tab lands on the skip link, which shows itself and jumps to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0, "the focused skip link is on screen"
    focus_ring = skip.evaluate("el => getComputedStyle(el).boxShadow + getComputedStyle(el).outlineStyle")
    assert focus_ring not in ("nonenone", "none"), "the focused skip link shows a focus indicator"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # Tab on to the search box (past the header's links) and search with Enter.
    page.goto(f"{base}/")
    for _ in range(25):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('type')") == "search":
            break
    else:
        pytest.fail("the search box is not reachable with Tab")
    page.keyboard.type("cardiology")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?q=cardiology"))
    assert page.locator(".card").count() == 1

    # On a phone: nothing scrolls sideways and the main navigation takes you places.
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    phone.goto(f"{base}/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    nav = phone.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Log in").tap()
    phone.wait_for_url(f"{base}/login/")
    phone.get_by_label("Username").fill(staff.username)
    phone.get_by_label("Password").fill(FACTORY_PASSWORD)
    phone.get_by_role("button", name="Log in").tap()
    phone.wait_for_url(f"{base}/")
    nav.get_by_role("link", name="Moderation").tap()
    phone.wait_for_url(f"{base}/moderation/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(phone, "moderation-queue-mobile")
