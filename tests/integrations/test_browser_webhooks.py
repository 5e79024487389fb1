"""The profile's webhooks section in a real Chromium: add a webhook, see its secret once, ping it
and see the delivery, delete it; the section passes axe's WCAG checks."""

from __future__ import annotations

import pytest

from tests.browser_support import DESKTOP, axe_load, browser, log_in, shot  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _axe(page) -> list[str]:
    axe_load(page)
    violations = page.evaluate(
        "async () => (await axe.run('#webhooks', {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}, resultTypes: ['violations']})).violations"
    )
    return [f"{v['id']}: {v['help']} {[n['html'][:120] for n in v['nodes'][:3]]}" for v in violations]


def test_a_user_adds_a_webhook_sees_its_secret_once_and_pings_it(live_server, browser, buyer, receiver):  # noqa: F811
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server.url, buyer.username)
    page.goto(f"{live_server.url}/me/#webhooks")
    section = page.locator("#webhooks")
    assert "You have no webhooks yet." in section.inner_text()

    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description (optional)").fill("My pipeline")
    page.get_by_label("job.status_changed").check()
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_url(f"{live_server.url}/me/webhooks/")
    secret = page.get_by_role("textbox", name="Secret").input_value()
    assert secret.startswith("whsec_")
    shot(page, "webhook-created")

    page.get_by_role("link", name="Back to your profile").click()
    page.wait_for_url(f"{live_server.url}/me/#webhooks")
    assert receiver.url in section.inner_text() and secret not in page.content()
    section.get_by_role("button", name="Ping").click()
    assert "Ping sent" in page.inner_text("body")
    receiver.wait_for(1)
    page.reload()
    assert "ping: delivered (HTTP 200)" in section.inner_text()
    shot(page, "profile-webhooks")
    assert _axe(page) == []

    section.get_by_role("button", name="Delete").click()
    assert "Webhook deleted." in page.inner_text("body") and "You have no webhooks yet." in section.inner_text()
    page.close()
