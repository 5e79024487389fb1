"""The error pages (``frontend/views/errors.py``): a page for people, JSON under the API."""

from __future__ import annotations

import json

import pytest
from django.test import Client, RequestFactory

from tests.frontend.support import text

pytestmark = pytest.mark.django_db


def test_server_error_is_a_page_and_json_under_api():
    from frontend.views.errors import server_error

    page = server_error(RequestFactory().get("/datasets/1/"))
    assert page.status_code == 500 and "Something went wrong on our side." in page.content.decode()
    api = server_error(RequestFactory().get("/api/v1/datasets/"))
    assert api.status_code == 500 and json.loads(api.content)["code"] == "server_error"


def test_not_found_is_a_page_and_json_under_api():
    page = Client().get("/no/such/page/")
    assert page.status_code == 404 and "<h1>Not found</h1>" in text(page)
    api = Client().get("/api/v1/no-such-endpoint/")
    assert api.status_code == 404 and api.json()["code"] == "not_found"
