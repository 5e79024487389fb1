import hashlib
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core.files.storage import storages

from common.errors import Conflict, FileTooLarge, InvalidFile, InvalidInput, InvalidSchema, PermissionDenied
from marketplace.models import Dataset
from marketplace.services import storage as storage_services
from marketplace.services.datasets import (
    ListingFields,
    dataset_create,
    dataset_delete,
    dataset_mock_upload,
    dataset_schema_declare,
    dataset_update,
    dataset_validate,
    storage_orphans_sweep,
)
from tests.conftest import named_file
from tests.factories import DEFAULT_CSV, declarable_schema, make_dataset

pytestmark = pytest.mark.django_db


def stored_files() -> list[Path]:
    root = Path(settings.STORAGES["datasets"]["OPTIONS"]["location"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def create(owner, data: bytes, name: str = "data.csv", **fields):
    fields.setdefault("title", "Blood tests")
    return dataset_create(owner=owner, file=named_file(data, name), filename=name, fields=ListingFields(**fields))


def test_upload_is_encrypted_at_rest_and_hashed(provider, csv_bytes):
    dataset = create(provider, csv_bytes)
    raw = storages["datasets"].open(dataset.storage_name).read()
    assert b"cholesterol" not in raw and b"north" not in raw
    assert dataset.file_sha256 == hashlib.sha256(csv_bytes).hexdigest()
    assert dataset.file_size == len(csv_bytes)
    assert b"".join(storage_services.encrypted_file_chunks(dataset.storage_name)) == csv_bytes
    assert dataset.status == Dataset.Status.DRAFT


def test_proposed_schema_has_types_and_coarse_bounds(provider, csv_bytes):
    dataset = create(provider, csv_bytes)
    columns = {c["name"]: c for c in dataset.proposed_schema["columns"]}
    assert columns["age"]["type"] == "integer"
    assert columns["age"]["min"] <= 30 and columns["age"]["max"] >= 69
    assert columns["age"]["min"] % 10 == 0 and columns["age"]["max"] % 10 == 0  # rounded outward
    assert columns["cholesterol"]["type"] == "float"
    assert columns["smoker"]["type"] == "boolean"
    assert columns["region"] == {**columns["region"], "type": "categorical", "categories": ["east", "north", "south"]}
    assert columns["visit_date"]["type"] == "datetime"
    assert dataset.declared_schema is None  # nothing public until the owner confirms


def test_parquet_upload_is_accepted(provider):
    buf = io.BytesIO()
    pq.write_table(pa.table({"kwh": [0.5, 1.25, 3.0], "tariff": ["flat", "ev", "flat"]}), buf)
    dataset = create(provider, buf.getvalue(), "meters.parquet")
    assert dataset.file_format == "parquet"
    assert [c["type"] for c in dataset.proposed_schema["columns"]] == ["float", "categorical"]
    assert dataset_validate(dataset_id=dataset.pk).row_count == 3


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"", "empty.csv", "empty_file"),
        (b"   \n", "blank.csv", "empty_file"),
        (b"a,b,c\n", "header_only.csv", "empty_file"),
        (b"a,b\n1,2\n3,4,5\n", "ragged.csv", "malformed_csv"),
        (b"a,b\n\x00\x01\x02,\x03\n", "binary.csv", "malformed_csv"),
        (b"a,a\n1,2\n", "dup_header.csv", "malformed_csv"),
        (b"this is not parquet at all", "fake.parquet", "invalid_parquet"),
        (b"PAR1garbagePAR1", "broken.parquet", "invalid_parquet"),
        (b"a,b\n1,2\n", "data.xlsx", "unsupported_format"),
    ],
)
def test_bad_files_are_refused_and_leave_nothing_behind(provider, data, name, code):
    with pytest.raises((InvalidFile, InvalidInput)) as excinfo:
        create(provider, data, name)
    assert excinfo.value.code == code
    assert excinfo.value.detail  # a readable reason
    assert Dataset.objects.count() == 0
    assert stored_files() == []


def test_file_over_the_limit_is_refused_mid_stream_without_orphans(provider, settings):
    settings.DATASET_MAX_UPLOAD_BYTES = 10_000
    data = b"x,y\n" + b"1,2\n" * 5000

    class Unsized(io.BytesIO):  # no .size: the limit must hold while streaming
        name = "big.csv"

    with pytest.raises(FileTooLarge) as excinfo:
        dataset_create(owner=provider, file=Unsized(data), fields=ListingFields(title="Too big"))
    assert excinfo.value.status == 413
    assert "10,000 bytes" in excinfo.value.detail
    assert Dataset.objects.count() == 0
    assert stored_files() == []


def test_database_failure_after_storing_removes_the_file(provider, csv_bytes, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Dataset, "save", boom)
    with pytest.raises(RuntimeError):
        create(provider, csv_bytes)
    assert stored_files() == []


def test_listing_fields_are_validated(provider, csv_bytes):
    with pytest.raises(InvalidInput, match="title is required"):
        create(provider, csv_bytes, title="  ")
    with pytest.raises(InvalidInput, match="cannot be negative"):
        create(provider, csv_bytes, price="-1")
    with pytest.raises(InvalidInput, match="at most the total epsilon"):
        create(provider, csv_bytes, epsilon_total="1", epsilon_per_job="2")
    with pytest.raises(InvalidInput, match="Tag"):
        create(provider, csv_bytes, tags=["ok", "not valid!"])
    assert stored_files() == []


def test_only_the_owner_updates(provider, buyer):
    dataset = make_dataset(owner=provider)
    with pytest.raises(PermissionDenied):
        dataset_update(dataset=dataset, actor=buyer, fields=ListingFields(title="Hijacked"))
    updated = dataset_update(dataset=dataset, actor=provider, fields=ListingFields(price="9.5", tags=["a", "b"]))
    assert str(updated.price) == "9.500000"
    assert sorted(t.name for t in updated.tags.all()) == ["a", "b"]


def test_schema_declaration_rules(provider):
    dataset = make_dataset(owner=provider, declare=False)
    schema = dataset.proposed_schema
    bad = {"columns": [dict(c) for c in schema["columns"]]}
    bad["columns"][0].update(min=50, max=10)
    with pytest.raises(InvalidSchema, match="min .* must not be greater than max"):
        dataset_schema_declare(dataset=dataset, actor=provider, schema=bad)
    with pytest.raises(InvalidSchema, match="at least one column"):
        dataset_schema_declare(dataset=dataset, actor=provider, schema={"columns": []})
    unknown = {"columns": [dict(c) for c in schema["columns"]]}
    unknown["columns"][0]["type"] = "complex"
    with pytest.raises(InvalidSchema, match="unknown type"):
        dataset_schema_declare(dataset=dataset, actor=provider, schema=unknown)
    with pytest.raises(InvalidSchema, match="must be the file's columns"):
        dataset_schema_declare(dataset=dataset, actor=provider, schema={"columns": schema["columns"][:1]})
    schema = declarable_schema(dataset, DEFAULT_CSV, "data.csv")
    with pytest.raises(InvalidInput, match="public row count") as excinfo:
        dataset_schema_declare(dataset=dataset, actor=provider, schema=schema)
    assert excinfo.value.code == "invalid_public_row_count"
    for bad in (0, -1, "12.5", "many", True, 10**13):
        with pytest.raises(InvalidInput) as excinfo:
            dataset_schema_declare(dataset=dataset, actor=provider, schema=schema, public_row_count=bad)
        assert excinfo.value.code == "invalid_public_row_count", bad
    declared = dataset_schema_declare(dataset=dataset, actor=provider, schema=schema, public_row_count="1,000")
    assert declared.declared_schema["columns"][0]["name"] == "age"
    assert declared.schema_confirmed_at is not None and declared.public_row_count == 1000


def test_schema_is_locked_once_listed(provider, staff):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    with pytest.raises(Conflict) as excinfo:
        dataset_schema_declare(dataset=dataset, actor=provider, schema=dataset.declared_schema)
    assert excinfo.value.code == "schema_locked"


def test_full_validation_finds_a_bad_row_after_the_sample(provider, settings):
    settings.DATASET_SCHEMA_SAMPLE_BYTES = 1000
    data = b"a,b\n" + b"1,2\n" * 2000 + b"1,2,3\n"
    dataset = create(provider, data)
    assert dataset.validation == Dataset.Validation.PENDING or dataset.validation == Dataset.Validation.INVALID
    checked = dataset_validate(dataset_id=dataset.pk)
    assert checked.validation == Dataset.Validation.INVALID
    assert "does not parse" in checked.validation_detail
    good = dataset_validate(dataset_id=create(provider, b"a,b\n" + b"1,2\n" * 2000).pk)
    assert (good.validation, good.row_count, good.validation_progress) == ("valid", 2000, 100)


def test_mock_upload_must_match_declared_columns(provider):
    dataset = make_dataset(owner=provider)
    with pytest.raises(InvalidFile, match="declared columns"):
        dataset_mock_upload(dataset=dataset, actor=provider, file=named_file(b"x,y\n1,2\n", "m.csv"))
    updated = dataset_mock_upload(
        dataset=dataset, actor=provider, file=named_file(b"age,income,group\n1,2,a\n", "m.csv")
    )
    assert updated.mock_storage_name.startswith("mock/")
    assert storages["datasets"].open(updated.mock_storage_name).read() == b"age,income,group\n1,2,a\n"


def test_delete_removes_the_row_and_the_file(provider, django_capture_on_commit_callbacks):
    dataset = make_dataset(owner=provider)
    with django_capture_on_commit_callbacks(execute=True):
        dataset_delete(dataset=dataset, actor=provider)
    assert not Dataset.objects.exists()
    assert stored_files() == []


def test_orphan_sweep_removes_only_unreferenced_old_files(provider):
    dataset = make_dataset(owner=provider)
    orphan = storage_services.encrypted_file_store(source=io.BytesIO(b"a,b\n1,2\n"))
    path = Path(settings.STORAGES["datasets"]["OPTIONS"]["location"]) / orphan.name
    os.utime(path, (0, 0))
    assert storage_orphans_sweep() == [orphan.name]
    assert [p.name for p in stored_files()] == [Path(dataset.storage_name).name]
