"""Shared pieces of the browser tests: Chromium through Playwright (Debian's binary, no download),
screenshots, and signing in through the real login form."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

# Playwright's sync API runs an event loop in the test's thread; the ORM calls the tests make are not async.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
# The password tests.factories.UserFactory gives every user.
FACTORY_PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; `make test` installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # The ORM calls made while Playwright's loop runs get their own connection (Django keys
            # connections by context); close it here, or PostgreSQL cannot drop the test database.
            connections.close_all()


def shot(page, name: str) -> None:
    """A full-page screenshot under test-artifacts/screenshots/ (README's pictures come from here)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, base: str, username: str, password: str = FACTORY_PASSWORD) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def confirm_email(page, base: str, address: str) -> None:
    """Follow the confirmation link that sign-up mailed to ``address`` (the live server runs in
    this process, so the mail is in Django's test outbox), as the user would from their inbox."""
    import re

    from django.core import mail

    sent = [m for m in mail.outbox if address in m.to and "Confirm your e-mail" in m.subject]
    assert sent, f"no confirmation e-mail to {address}: {[m.subject for m in mail.outbox]}"
    link = re.search(r"https?://[^/\s]+(/\S+)", sent[-1].body)
    assert link, sent[-1].body
    page.goto(f"{base}{link.group(1)}")
    page.get_by_text(f"Thank you: {address} is confirmed.").wait_for()


AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"


def axe_load(page) -> None:
    """Load axe-core into the page, once. Evaluated through the DevTools protocol: a <script> tag
    would be refused by the site's Content-Security-Policy, as any injected script is."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
