"""The Content-Security-Policy in a real browser: Chromium reports every blocked script, style,
image or connection as a ``securitypolicyviolation`` event; the pages that run our scripts (the
wallet bundle, Chart.js, the job form) and the Swagger UI docs page must raise none and still work."""

from __future__ import annotations

import pytest

from marketplace.models import Dataset
from tests.browser_support import DESKTOP, log_in
from tests.factories import UserFactory, make_dataset

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Runs before any page script: records violations where the test can read them.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""


def _page(browser):
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    return page, console


def _visit(page, console, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status < 400, url
    assert response.headers.get("content-security-policy", "").count("script-src 'self'") == 1, url
    page.wait_for_load_state("networkidle")
    violations = page.evaluate("window.__csp")
    assert violations == [] and console == [], (url, violations, console)


def test_pages_and_api_docs_run_with_no_policy_violation(live_server, browser):
    base = live_server.url
    provider = UserFactory(username="provider")
    staff = UserFactory(username="moderator", is_staff=True)
    listed = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    buyer = UserFactory(username="buyer")

    visitor, console = _page(browser)
    for path in ["/", "/login/", "/signup/", "/password/reset/", f"/datasets/{listed.pk}/"]:
        _visit(visitor, console, f"{base}{path}")
    # The docs page builds itself from its own script file: operations appear.
    _visit(visitor, console, f"{base}/api/docs/")
    visitor.wait_for_selector(".opblock", timeout=20_000)
    assert visitor.locator(".opblock").count() > 20

    page, console = _page(browser)
    log_in(page, base, buyer.username)  # the real form, through django-axes
    for path in [f"/datasets/{listed.pk}/", "/me/", "/me/password/", "/me/jobs/"]:
        _visit(page, console, f"{base}{path}")
    # What an injected script (an XSS) would do is refused and reported: the policy is enforced.
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__pwned = 1";
                   document.body.appendChild(s); }"""
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__pwned") is None
    assert "script-src" in page.evaluate("window.__csp")[0]

    owner, console = _page(browser)
    log_in(owner, base, provider.username)
    _visit(owner, console, f"{base}/me/dashboard/")  # Chart.js draws on canvases
    assert owner.locator("canvas").count() >= 1
