"""A provider publishes through the real pages in a real Chromium, a moderator approves it, a
visitor finds it and downloads mock data — and no page, link or guessed path ever carries a byte
of the private file."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from marketplace.models import Dataset
from tests import browser_support
from tests.browser_support import browser, shot  # noqa: F401
from tests.factories import UserFactory, make_dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a sturdy passphrase 42"
MARKER = b"PRIVATE-MARKER-c41d7e02"
PRIVATE_CSV = b"age,cholesterol,smoker,region,note\n" + b"".join(
    f"{25 + i % 50},{150 + (i * 7) % 120}.5,{'true' if i % 3 == 0 else 'false'},{['north', 'south', 'east'][i % 3]},"
    f"{MARKER.decode() if i == 41 else f'visit note {i}'}\n".encode()
    for i in range(120)
)
DESCRIPTION = """Anonymised outpatient cardiology visits from three regional clinics, 2019-2023.

* one row per visit: age, total cholesterol (mg/dL), smoker flag, clinic region
* collected under informed consent; free-text notes are **never** released

Good for risk-factor models trained with DP-SGD."""
SHOWCASE = [
    (
        "Urban air quality sensors",
        "Hourly PM2.5 and NO2 readings from 140 street-level sensors.",
        ("environment", "air-quality"),
        "0",
        "CC-BY-4.0",
    ),
    (
        "Retail basket transactions",
        "Two years of anonymised supermarket baskets with store region and weekday.",
        ("retail", "transactions"),
        "25",
        "proprietary",
    ),
    (
        "Taxi trip durations",
        "Pick-up zone, drop-off zone, distance and duration for city taxi trips.",
        ("mobility",),
        "8",
        "ODbL-1.0",
    ),
]


def log_in(page, base: str, username: str) -> None:
    browser_support.log_in(page, base, username, PASSWORD)


def crawl(context, base: str, start: list[str], limit: int = 80) -> list[str]:
    """Every same-site URL reachable by links from ``start`` (GET only, logout excluded), each
    fetched with the context's cookies; fails if a response carries the private marker."""
    seen: set[str] = set()
    queue = deque(start)
    fetched: list[str] = []
    while queue and len(fetched) < limit:
        url = queue.popleft()
        parts = urlsplit(url)
        if parts.netloc and parts.netloc != urlsplit(base).netloc:
            continue
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if path in seen or path.startswith(("/logout", "/admin")):
            continue
        seen.add(path)
        response = context.request.get(base + path, max_redirects=5)
        body = response.body()
        assert MARKER not in body, f"private bytes served at {path}"
        fetched.append(path)
        if "text/html" in response.headers.get("content-type", ""):
            for href in re.findall(rb'href="([^"#]+)"', body):
                queue.append(urljoin(base + path, href.decode().replace("&amp;", "&")))
    return fetched


def test_provider_publishes_admin_approves_visitor_finds_it(live_server, browser):
    base = live_server.url
    UserFactory(username="admin", email="admin@example.org", is_staff=True, password=PASSWORD)
    curator = UserFactory(username="opendata-lab", organisation="Open Data Lab")
    for title, description, tags, price, licence in SHOWCASE:
        make_dataset(
            owner=curator,
            title=title,
            description=description,
            tags=tags,
            price=price,
            licence=licence,
            status=Dataset.Status.LISTED,
        )

    # --- the provider signs up through the real form --------------------------------------------
    provider_ctx = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = provider_ctx.new_page()
    page.goto(f"{base}/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill("heartclinic")
    page.get_by_label("Email").fill("data@heartclinic.example")
    page.get_by_label("Organisation").fill("Regional Heart Clinic")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_text("Welcome, heartclinic").wait_for()
    # Submitting a dataset for review needs a confirmed e-mail: follow the link sign-up mailed.
    browser_support.confirm_email(page, base, "data@heartclinic.example")

    # --- uploads a CSV through the upload form (XHR with a progress bar) ------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Publish").click()
    # a malformed file first: the XHR answer replaces the form, message included, nothing is created
    page.get_by_label("Data file").set_input_files(
        files=[{"name": "broken.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2,3\n"}]
    )
    page.get_by_label("Title").fill("Broken upload")
    page.get_by_role("button", name="Upload and continue").click()
    page.get_by_role("alert").filter(has_text="The CSV file is malformed").wait_for()
    assert page.get_by_label("Title").input_value() == "Broken upload"
    assert not Dataset.objects.filter(title="Broken upload").exists()
    page.reload()
    page.get_by_label("Data file").set_input_files(
        files=[{"name": "cardiology-visits.csv", "mimeType": "text/csv", "buffer": PRIVATE_CSV}]
    )
    page.get_by_label("Title").fill("Cardiology outpatient visits")
    page.get_by_label("Description").fill(DESCRIPTION)
    page.get_by_label("Tags").fill("health, cardiology")
    page.get_by_label("Price", exact=True).fill("12.5")
    page.get_by_label("Total epsilon (ε)").fill("8")
    page.get_by_label("Epsilon per job").fill("2")
    shot(page, "upload")
    page.get_by_role("button", name="Upload and continue").click()
    page.wait_for_url(re.compile(r"/datasets/\d+/schema/$"))
    dataset_id = int(re.search(r"/datasets/(\d+)/schema/", page.url).group(1))

    # --- confirms the schema, tightening one bound ------------------------------------------------
    page.get_by_role("heading", name="Confirm the schema").wait_for()
    page.get_by_label("Min of age").fill("18")
    page.get_by_label("Max of age").fill("100")
    page.get_by_label("Description of cholesterol").fill("Total cholesterol, mg/dL")
    shot(page, "schema")
    page.get_by_role("button", name="Confirm schema").click()
    page.wait_for_url(f"{base}/datasets/{dataset_id}/")
    page.get_by_text("Schema confirmed.").wait_for()
    assert page.get_by_text("120 rows (visible only to you)").is_visible()  # validated on commit, eagerly

    # --- submits for review -----------------------------------------------------------------------
    page.get_by_role("button", name="Submit for review").click()
    page.get_by_text("Submitted for review.").wait_for()
    assert page.locator(".head-status .badge").inner_text() == "Pending review"
    shot(page, "dataset-owner")

    # --- the admin approves with a reason from the queue --------------------------------------------
    admin_ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    admin = admin_ctx.new_page()
    log_in(admin, base, "admin")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Moderation").click()
    item = admin.locator(".queue-item", has_text="Cardiology outpatient visits")
    item.get_by_label("Reason to approve").fill("Schema bounds are coarse; description is clear.")
    shot(admin, "moderation-queue")
    item.get_by_role("button", name="Approve").click()
    admin.get_by_text("Approved: the dataset is now listed.").wait_for()
    assert Dataset.objects.get(pk=dataset_id).status == Dataset.Status.LISTED

    # --- a visitor finds it in the catalogue and downloads the mock CSV ---------------------------
    visitor_ctx = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    visitor = visitor_ctx.new_page()
    visitor.goto(f"{base}/")
    shot(visitor, "catalogue")
    visitor.set_viewport_size({"width": 390, "height": 844})
    shot(visitor, "catalogue-mobile")
    visitor.set_viewport_size({"width": 1280, "height": 860})
    visitor.get_by_label("Search datasets").fill("cardiology")
    visitor.get_by_label("Search datasets").press("Enter")
    visitor.wait_for_url(re.compile(r"\?q=cardiology"))
    cards = visitor.locator(".card")
    assert cards.count() == 1
    cards.get_by_role("link", name="Cardiology outpatient visits").click()
    visitor.wait_for_url(f"{base}/datasets/{dataset_id}/")
    assert visitor.locator(".prose strong", has_text="never").is_visible()  # Markdown rendered
    assert visitor.get_by_text("18 … 100").is_visible()  # the declared bound, not the data's
    shot(visitor, "dataset")
    with visitor.expect_download() as download_info:
        visitor.get_by_role("link", name="Download mock CSV").click()
    mock = Path(download_info.value.path()).read_bytes()
    assert mock.startswith(b"age,cholesterol,smoker,region,note\n") and mock.count(b"\n") == 101
    assert MARKER not in mock

    # --- no link on any page, and no guessed path, serves the private bytes -------------------------
    dataset = Dataset.objects.get(pk=dataset_id)
    guesses = [
        f"/datasets/{dataset_id}/file/",
        f"/datasets/{dataset_id}/download/",
        f"/datasets/{dataset_id}/raw/",
        f"/api/v1/datasets/{dataset_id}/file/",
        f"/api/v1/datasets/{dataset_id}/download/",
        f"/api/v1/datasets/{dataset_id}/mock/?source=uploaded",
        f"/api/v1/datasets/{dataset_id}/mock/?rows=10000",
        f"/api/v1/datasets/{dataset_id}/",
        f"/api/v1/datasets/{dataset_id}/schema/",
        "/api/v1/datasets/mine/",
        f"/media/{dataset.storage_name}",
        f"/static/{dataset.storage_name}",
        f"/{dataset.storage_name}",
        "/static/../.local/",
        "/media/",
        f"/storage/{dataset.storage_name}",
        "/api/schema/",
    ]
    start = ["/", f"/datasets/{dataset_id}/", "/me/datasets/", "/moderation/?status=all", "/moderation/log/", *guesses]
    crawled = {
        name: crawl(ctx, base, start)
        for name, ctx in (("visitor", visitor_ctx), ("provider", page.context), ("admin", admin_ctx))
    }
    assert f"/datasets/{dataset_id}/edit/" in crawled["provider"]
    assert f"/api/v1/datasets/{dataset_id}/mock/" in crawled["visitor"]
    assert len(crawled["admin"]) > 25

    for ctx in (provider_ctx, admin_ctx, visitor_ctx):
        ctx.close()
