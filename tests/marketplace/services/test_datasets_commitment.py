"""Finding 4: the dataset's public fingerprint is a hiding commitment, SHA-256(salt || file), and
neither the plain hash, the exact size nor the private row count reaches anyone but the owner."""

import hashlib
import importlib
import json
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.urls import reverse

from chain.services.publishing import metadata_document
from common.crypto import DecryptionError
from marketplace.models import Dataset
from marketplace.services.datasets import (
    HOLDOUT_PURPOSE,
    SALT_PURPOSE,
    commitment_compute,
    dataset_commitment_of,
    dataset_commitment_salt,
    dataset_holdout_key,
    secret_open,
    size_bucket_of,
)
from marketplace.services.storage import encrypted_file_chunks
from tests.conftest import client_for
from tests.factories import DEFAULT_CSV, make_dataset

pytestmark = pytest.mark.django_db

PUBLIC_ROWS = 100  # declared; the private count is 30, so the two can be told apart


@pytest.fixture
def listed(provider, staff):
    return make_dataset(owner=provider, status="listed", moderator=staff, public_row_count=PUBLIC_ROWS)


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_a_candidate_file_cannot_be_confirmed_from_the_public_commitment(listed):
    plain = hashlib.sha256(DEFAULT_CSV).hexdigest()
    assert listed.file_sha256 == plain  # kept, owner-only, for integrity
    assert listed.commitment.startswith("0x") and len(listed.commitment) == 66
    assert listed.commitment != "0x" + plain and plain not in listed.commitment
    # the commitment is over salt || file, with a 256-bit salt sealed at rest
    salt = dataset_commitment_salt(dataset=listed)
    assert len(salt) == 32 and salt not in bytes(listed.commitment_salt_sealed)
    assert listed.commitment == "0x" + hashlib.sha256(salt + DEFAULT_CSV).hexdigest()
    assert dataset_commitment_of(dataset=listed, chunks=[DEFAULT_CSV[:7], DEFAULT_CSV[7:]]) == listed.commitment
    assert dataset_commitment_of(dataset=listed, chunks=[DEFAULT_CSV + b"\n"]) != listed.commitment
    # the stored (encrypted) file decrypts to the committed bytes: what the runner checks at job start
    assert dataset_commitment_of(dataset=listed, chunks=encrypted_file_chunks(listed.storage_name)) == listed.commitment


def test_the_same_file_uploaded_twice_gets_unlinkable_commitments(provider):
    first, second = make_dataset(owner=provider), make_dataset(owner=provider)
    assert first.file_sha256 == second.file_sha256
    assert first.commitment != second.commitment


def test_public_api_and_pages_show_neither_hash_nor_size_nor_row_count(listed, buyer, api):
    salt_hex = dataset_commitment_salt(dataset=listed).hex()
    private_keys = {"file_size", "file_sha256", "row_count", "commitment_salt", "schema_report", "proposed_schema"}
    for who, client in (("anonymous", api), ("buyer", client_for(buyer))):
        for path in (
            f"/api/v1/datasets/{listed.pk}/",
            f"/api/v1/datasets/{listed.pk}/schema/",
            "/api/v1/datasets/",
            "/api/v1/datasets/?q=clinical",
        ):
            response = client.get(path)
            assert response.status_code == 200, (who, path)
            body = response.content.decode()
            assert listed.file_sha256 not in body and salt_hex not in body, (who, path)
            assert not private_keys & _keys(json.loads(body)), (who, path)
        detail = client.get(f"/api/v1/datasets/{listed.pk}/").json()
        assert detail["commitment"] == listed.commitment and detail["size_bucket"] == "< 1 MB"
        assert detail["public_row_count"] == PUBLIC_ROWS
    for who, client in (("anonymous", Client()), ("buyer", Client())):
        if who == "buyer":
            client.force_login(buyer)
        page = client.get(reverse("frontend:dataset", args=[listed.pk])).content.decode()
        assert listed.file_sha256 not in page and salt_hex not in page, who
        assert f"{listed.file_size} bytes" not in page and filesizeformat(listed.file_size) not in page, who
        assert "30 rows" not in page and f"about {PUBLIC_ROWS} rows" in page and "declared by the owner" in page
        assert listed.commitment[:18] in page and "&lt; 1 MB" in page
        catalogue = client.get(reverse("frontend:catalogue")).content.decode()
        assert listed.file_sha256 not in catalogue
        assert client.get(reverse("frontend:dataset-commitment", args=[listed.pk])).status_code in (302, 403)


def test_the_owner_sees_the_salt_and_rederives_the_commitment(listed, provider):
    body = client_for(provider).get(f"/api/v1/datasets/{listed.pk}/").json()
    assert body["file_sha256"] == hashlib.sha256(DEFAULT_CSV).hexdigest()
    assert body["file_size"] == len(DEFAULT_CSV) and body["row_count"] == 30
    assert "SHA-256(salt || file bytes)" in body["commitment_formula"]
    rederived = "0x" + hashlib.sha256(bytes.fromhex(body["commitment_salt"]) + DEFAULT_CSV).hexdigest()
    assert rederived == body["commitment"] == listed.commitment


def test_the_owner_checks_a_file_against_the_commitment(listed, provider, staff):
    client = Client()
    client.force_login(provider)
    url = reverse("frontend:dataset-commitment", args=[listed.pk])
    page = client.get(url).content.decode()
    assert dataset_commitment_salt(dataset=listed).hex() in page and listed.file_sha256 in page
    same = client.post(url, {"file": SimpleUploadedFile("copy.csv", DEFAULT_CSV)}).content.decode()
    assert "Match." in same and "No match." not in same
    other = client.post(url, {"file": SimpleUploadedFile("other.csv", DEFAULT_CSV.replace(b"21,", b"22,"))})
    assert other.status_code == 200 and "No match." in other.content.decode()
    assert client.post(url, {}).status_code == 400
    moderator = Client()
    moderator.force_login(staff)
    assert "Match." in moderator.post(url, {"file": SimpleUploadedFile("c.csv", DEFAULT_CSV)}).content.decode()


def test_a_buyer_gets_no_file_check(listed, buyer):
    client = Client()
    client.force_login(buyer)
    url = reverse("frontend:dataset-commitment", args=[listed.pk])
    assert client.get(url).status_code == 403
    response = client.post(url, {"file": SimpleUploadedFile("guess.csv", DEFAULT_CSV)})
    assert response.status_code == 403 and b"Match." not in response.content


def test_holdout_key_is_secret_and_per_dataset(provider, buyer):
    first, second = make_dataset(owner=provider), make_dataset(owner=provider)
    key = dataset_holdout_key(dataset=first)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key != dataset_holdout_key(dataset=second)
    assert key != dataset_commitment_salt(dataset=first).hex()
    owner_view = client_for(provider).get(f"/api/v1/datasets/{first.pk}/").content.decode()
    assert key not in owner_view  # shown to no one, the owner included
    # a sealed holdout key does not open as a salt, nor the other way round
    with pytest.raises(DecryptionError):
        secret_open(first.holdout_key_sealed, purpose=SALT_PURPOSE)
    with pytest.raises(DecryptionError):
        secret_open(first.commitment_salt_sealed, purpose=HOLDOUT_PURPOSE)


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        (1, "< 1 MB"),
        (999_999, "< 1 MB"),
        (1_000_000, "1–10 MB"),
        (9_999_999, "1–10 MB"),
        (10_000_000, "10–100 MB"),
        (123_456_789, "100 MB–1 GB"),
        (1_000_000_000, "1–10 GB"),
        (5 * 10**12, "1–10 TB"),
    ],
)
def test_size_bucket(size, bucket):
    assert size_bucket_of(size) == bucket


def test_chain_metadata_commits_to_the_commitment_not_the_plain_hash(listed):
    document = metadata_document(listed)
    assert document["commitment"] == listed.commitment
    assert listed.file_sha256 not in json.dumps(document)


def test_backfill_migration_gives_old_rows_a_salt_and_a_commitment(provider):
    dataset = make_dataset(owner=provider)
    Dataset.objects.filter(pk=dataset.pk).update(
        commitment="", commitment_salt_sealed=b"", holdout_key_sealed=b"", size_bucket="", delta=1e-3
    )
    migration = importlib.import_module("marketplace.migrations.0008_dataset_commitment_backfill")
    migration.backfill(django_apps, SimpleNamespace(connection=connection))
    dataset.refresh_from_db()
    salt = dataset_commitment_salt(dataset=dataset)
    assert dataset.commitment == commitment_compute(salt=salt, chunks=[DEFAULT_CSV])
    assert len(dataset_holdout_key(dataset=dataset)) == 64
    assert dataset.size_bucket == "< 1 MB" and dataset.delta_total == 1e-3
