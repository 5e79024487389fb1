"""Shared fixtures. Tests mirror the source tree; slow ones carry the integration/browser markers."""

from __future__ import annotations

import io

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory

CSV_BYTES = b"age,sex,cholesterol,smoker,region,visit_date\n" + b"".join(
    f"{30 + i % 40},{'FM'[i % 2]},{150 + (i * 7) % 120}.5,{'true' if i % 3 == 0 else 'false'},"
    f"{['north', 'south', 'east'][i % 3]},2023-0{1 + i % 9}-1{i % 9}\n".encode()
    for i in range(60)
)


def named_file(data: bytes, name: str) -> io.BytesIO:
    fh = io.BytesIO(data)
    fh.name = name
    return fh


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Each test gets its own dataset storage folder, so "nothing left behind" is checkable."""
    settings.STORAGES = {
        **settings.STORAGES,
        "datasets": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage"), "base_url": None},
        },
        "results": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "results"), "base_url": None},
        },
    }
    return tmp_path / "storage"


@pytest.fixture
def csv_bytes() -> bytes:
    return CSV_BYTES


@pytest.fixture
def provider(db):
    return UserFactory(username="provider", email="provider@example.org")


@pytest.fixture
def buyer(db):
    return UserFactory(username="buyer", email="buyer@example.org")


@pytest.fixture
def staff(db):
    return UserFactory(username="moderator", email="mod@example.org", is_staff=True)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
