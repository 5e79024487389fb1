"""The server-rendered pages as each kind of user: who sees which page, and the private file never
appears in any of them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from marketplace.models import Dataset
from tests.factories import make_dataset
from tests.frontend.support import MARKER, client_as, schema_post_data, text, upload

pytestmark = pytest.mark.django_db


# --- who sees which page -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "buyer", "provider", "staff"])
def test_pages_render_for_the_right_users(who, provider, buyer, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    user = {"anonymous": None, "buyer": buyer, "provider": provider, "staff": staff}[who]
    client = client_as(user)
    owner_pages = ["dataset-schema", "dataset-edit", "dataset-mock", "dataset-delete"]
    expected = {
        "/": 200,
        reverse("frontend:dataset", args=[dataset.pk]): 200,
        reverse("frontend:signup"): 200 if user is None else 302,
        reverse("frontend:login"): 200 if user is None else 302,
        reverse("frontend:dataset-new"): 302 if user is None else 200,
        reverse("frontend:my-datasets"): 302 if user is None else 200,
        reverse("frontend:profile"): 302 if user is None else 200,
        reverse("frontend:moderation-log"): 302 if user is None else 200,
        reverse("frontend:moderation"): {"anonymous": 302, "staff": 200}.get(who, 403),
        **{
            reverse(f"frontend:{name}", args=[dataset.pk]): {"anonymous": 302, "provider": 200}.get(who, 403)
            for name in owner_pages
        },
    }
    for url, status in expected.items():
        response = client.get(url)
        assert response.status_code == status, (who, url, response.status_code)
        if status == 302 and user is None and url not in ("/signup/", "/login/"):
            assert response["Location"].startswith("/login/?next=")


def test_moderation_pages_refuse_non_staff_with_a_page(buyer):
    response = client_as(buyer).get(reverse("frontend:moderation"))
    assert response.status_code == 403
    assert "Only moderators can see this page." in text(response)
    assert "Moderation</a>" not in text(client_as(buyer).get("/"))  # no nav link either


def test_nav_shows_moderation_to_staff_only(staff, buyer):
    assert 'href="/moderation/"' in text(client_as(staff).get("/"))
    assert 'href="/moderation/"' not in text(client_as(buyer).get("/"))


@pytest.mark.parametrize("status", ["draft", "pending_review", "rejected", "delisted"])
def test_hidden_datasets_are_404_for_strangers(status, provider, buyer, staff):
    dataset = make_dataset(owner=provider, title="Hidden one", status=status, moderator=staff)
    url = reverse("frontend:dataset", args=[dataset.pk])
    for user in (None, buyer):
        response = client_as(user).get(url)
        assert response.status_code == 404
        assert "Hidden one" not in text(response) and "No such dataset." in text(response)
    assert client_as(user).get(f"/api/v1/datasets/{dataset.pk}/mock/").status_code == 404
    for user in (provider, staff):
        assert "Hidden one" in text(client_as(user).get(url))


# --- the private file never leaves -----------------------------------------------------------


def test_private_file_bytes_never_appear_in_any_page(provider, buyer, staff, django_capture_on_commit_callbacks):
    owner = client_as(provider)
    with django_capture_on_commit_callbacks(execute=True):
        upload(owner)
    dataset = Dataset.objects.get()
    owner.post(reverse("frontend:dataset-schema", args=[dataset.pk]), schema_post_data(dataset))
    owner.post(reverse("frontend:dataset-transition", args=[dataset.pk]), {"action": "submit"})
    client_as(staff).post(
        reverse("frontend:dataset-transition", args=[dataset.pk]), {"action": "approve", "reason": "fine"}
    )
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.LISTED

    pk = dataset.pk
    urls = [
        "/",
        "/?q=cardiology",
        "/me/",
        "/me/datasets/",
        "/moderation/",
        "/moderation/?status=all",
        "/moderation/log/",
        "/datasets/new/",
        f"/datasets/{pk}/",
        f"/datasets/{pk}/schema/",
        f"/datasets/{pk}/edit/",
        f"/datasets/{pk}/mock/",
        f"/datasets/{pk}/delete/",
        f"/api/v1/datasets/{pk}/",
        f"/api/v1/datasets/{pk}/schema/",
        f"/api/v1/datasets/{pk}/mock/",
        f"/api/v1/datasets/{pk}/mock/?source=synthetic&rows=10000",
        "/api/v1/datasets/",
        "/api/v1/datasets/mine/",
        "/api/v1/moderation/queue/?status=all",
        f"/datasets/{pk}/file/",
        f"/datasets/{pk}/download/",
        f"/api/v1/datasets/{pk}/file/",
        f"/media/{dataset.storage_name}",
        f"/static/{dataset.storage_name}",
        f"/{dataset.storage_name}",
    ]
    checked = 0
    for user in (None, buyer, provider, staff):
        client = client_as(user)
        for url in urls:
            response = client.get(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert MARKER not in body, (user, url)
            checked += response.status_code == 200
    assert checked > 40
    # searching for a private value finds nothing: the index holds listing text only
    assert "0 datasets match" in text(Client().get("/", {"q": MARKER.decode()}))
    mock = client_as(buyer).get(f"/api/v1/datasets/{pk}/mock/")
    assert mock.status_code == 200 and mock.content.startswith(b"age,income,group,note\n")
