"""Findings 3, 5, 7, 10 and 11, marketplace side: the schema proposal is coarse, the public row
count is declared by the owner, malformed cells are reported to the owner only, and the owner
sets the holdout fraction and the cumulative delta cap."""

import datetime as dt
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.test import Client
from django.urls import reverse

from common.errors import InvalidInput
from marketplace.models import Dataset
from marketplace.selectors.schema_report import dataset_schema_report
from marketplace.services.datasets import (
    ListingFields,
    dataset_create,
    dataset_schema_declare,
    dataset_update,
    dataset_validate,
    public_row_count_suggest,
)
from marketplace.services.moderation import dataset_transition
from marketplace.services.schema import schema_propose
from tests.conftest import client_for, named_file
from tests.factories import make_dataset

pytestmark = pytest.mark.django_db


def create(owner, data: bytes, name: str = "data.csv", **fields):
    fields.setdefault("title", "Survey")
    dataset = dataset_create(owner=owner, file=named_file(data, name), filename=name, fields=ListingFields(**fields))
    return dataset_validate(dataset_id=dataset.pk)


def page(client: Client, name: str, dataset: Dataset):
    return client.get(reverse(name, args=[dataset.pk]))


# --- the proposal ----------------------------------------------------------------------------


def test_proposed_bounds_are_coarse_not_the_private_extremes():
    ages = [23.7 + i * (87.2 - 23.7) / 59 for i in range(60)]
    narrow = [1000.3 + (i % 7) * 0.1 for i in range(60)]
    table = pa.table({"age": ages, "price": narrow, "count": list(range(18, 78))})
    columns = {c["name"]: c for c in schema_propose(table)["columns"]}
    assert (columns["age"]["min"], columns["age"]["max"]) == (20.0, 90.0)
    assert (columns["price"]["min"], columns["price"]["max"]) == (1000.0, 1100.0)  # not 1000.3 / 1000.9
    assert (columns["count"]["min"], columns["count"]["max"]) == (10, 80)
    for spec, lo, hi in ((columns["age"], 23.7, 87.2), (columns["count"], 18, 77)):
        assert spec["min"] < lo and spec["max"] > hi  # strictly outward, so nothing exact


def test_proposed_datetime_bounds_are_whole_years_and_survive_far_timestamps():
    stamps = pa.array([dt.datetime(2021, 3, 14, 15, 9), dt.datetime(2023, 7, 2)] * 10, pa.timestamp("us"))
    far = pa.array([0, 10**16, None], pa.timestamp("ms"))  # year ~318,000: beyond Python's datetime
    columns = {c["name"]: c for c in schema_propose(pa.table({"visit": stamps}))["columns"]}
    assert (columns["visit"]["min"], columns["visit"]["max"]) == ("2021-01-01", "2024-01-01")
    far_spec = schema_propose(pa.table({"t": far}))["columns"][0]
    assert far_spec["type"] == "datetime" and far_spec["min"] == "1970-01-01" and far_spec["max"] == "9999-12-31"


def test_rare_categories_are_not_proposed_and_the_owner_is_told():
    values = ["north"] * 25 + ["south"] * 20 + ["east"] * 19 + ["isle of man"]
    spec = schema_propose(pa.table({"region": values}))["columns"][0]
    assert spec["type"] == "categorical" and spec["categories"] == ["north", "south"]
    assert "fewer than 20 times" in spec["note"] and "type" in spec["note"]
    assert spec["description"] == ""  # the note is not part of what becomes public
    sparse = schema_propose(pa.table({"g": ["a", "b"] * 15}))["columns"][0]
    assert sparse["categories"] == [] and "type the categories" in sparse["note"]


def test_the_note_never_reaches_the_declared_schema(provider):
    dataset = make_dataset(owner=provider)
    assert all("note" not in c for c in dataset.declared_schema["columns"])


# --- the public row count --------------------------------------------------------------------


@pytest.mark.parametrize(("private", "suggested"), [(None, None), (7, 7), (30, 30), (1234, 1200), (98765, 99000)])
def test_public_row_count_suggestion_is_two_significant_figures(private, suggested):
    assert public_row_count_suggest(private) == suggested


def test_schema_page_prefills_the_rounded_row_count_and_says_what_is_public(provider):
    data = b"x,flag\n" + b"".join(f"{i},{'ab'[i % 2]}\n".encode() for i in range(1234))
    dataset = create(provider, data)
    client = Client()
    client.force_login(provider)
    body = page(client, "frontend:dataset-schema", dataset).content.decode()
    assert 'name="public_row_count" value="1200"' in body
    assert "will be public" in body and "batch sampling" in body
    assert "What becomes public when you confirm" in body and "types, bounds, categories" in body
    url = reverse("frontend:dataset-schema", args=[dataset.pk])
    post = {
        "col-TOTAL_FORMS": "2",
        "col-INITIAL_FORMS": "2",
        "col-MIN_NUM_FORMS": "0",
        "col-MAX_NUM_FORMS": "500",
        "col-0-type": "integer",
        "col-0-min": "0",
        "col-0-max": "2000",
        "col-1-type": "categorical",
        "col-1-categories": "a, b",
    }
    missing = client.post(url, post)
    assert missing.status_code == 400 and Dataset.objects.get(pk=dataset.pk).declared_schema is None
    assert client.post(url, {**post, "public_row_count": "0"}).status_code == 400
    assert client.post(url, {**post, "public_row_count": "1200", "holdout_fraction": "0.7"}).status_code == 400
    done = client.post(url, {**post, "public_row_count": "1200", "holdout_fraction": "0.1"})
    assert done.status_code == 302
    dataset.refresh_from_db()
    assert dataset.public_row_count == 1200 and dataset.holdout_fraction == 0.1
    assert dataset.row_count == 1234  # the private count is unchanged and stays private


def test_the_public_sees_about_n_rows_declared_by_the_owner(provider, staff, buyer):
    listed = make_dataset(owner=provider, status="listed", moderator=staff, public_row_count=5000)
    client = Client()
    client.force_login(buyer)
    body = page(client, "frontend:dataset", listed).content.decode()
    assert "about 5000 rows" in body and "(declared by the owner)" in body
    assert client_for(buyer).get(f"/api/v1/datasets/{listed.pk}/").json()["public_row_count"] == 5000


# --- the owner's report of cells that do not fit --------------------------------------------

MESSY = (
    b"age,smoker,region,visit\n"
    + b"".join(f"{30 + i % 40},true,north,2022-05-0{1 + i % 9}\n".encode() for i in range(40))
    + b"abc,true,north,2022-01-01\n"  # not a number
    + b"old,maybe,north,2022-01-01\n"  # not a number, not a boolean
    + b"250,false,atlantis,2022-01-01\n"  # above max, undeclared category
    + b"-3,false,south,not a date\n"  # below min, unparseable timestamp
    + b"40,false,\xff\xfenorth,1850-01-01\n"  # bad UTF-8, before min
    + b",true,north,2022-01-01\n"  # missing in a non-nullable column
)
MESSY_SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "min": 0, "max": 120},
        {"name": "smoker", "type": "boolean"},
        {"name": "region", "type": "categorical", "categories": ["north", "south"]},
        {"name": "visit", "type": "datetime", "min": "2000-01-01", "max": "2030-01-01"},
    ]
}


def _issues(dataset: Dataset) -> dict[str, dict[str, int]]:
    return {c["name"]: c["issues"] for c in dataset.schema_report["columns"]}


def test_malformed_cells_are_counted_per_column_against_the_declared_schema(provider):
    dataset = create(provider, MESSY)
    assert dataset.validation == "valid" and dataset.row_count == 46  # nothing dropped, nothing failed
    assert dataset.schema_report["against"] == "proposed"
    dataset = dataset_schema_declare(dataset=dataset, actor=provider, schema=MESSY_SCHEMA, public_row_count=50)
    assert dataset_schema_report(dataset=dataset).stale  # the recheck is enqueued on commit
    dataset = dataset_validate(dataset_id=dataset.pk)
    assert dataset.schema_report["against"] == "declared"
    assert _issues(dataset) == {
        "age": {"not_number": 2, "above_max": 1, "below_min": 1, "missing": 1},
        "smoker": {"not_boolean": 1},
        "region": {"bad_utf8": 1, "undeclared_category": 1},
        "visit": {"not_datetime": 1, "below_min": 1},
    }
    report = dataset_schema_report(dataset=dataset)
    assert not report.stale
    lines = {line.split(":")[0]: line for line in report.lines}
    assert lines["column age"] == (
        "column age: 1 cell missing in a column declared not nullable, will be replaced by the public default at "
        "compute time; 2 cells not a number, will be replaced by the public default at compute time; "
        "1 cell below min 0, will be clamped; 1 cell above max 120, will be clamped"
    )
    assert "not valid UTF-8" in lines["column region"] and "not a declared category" in lines["column region"]
    assert "before min 2000-01-01, will be clamped" in lines["column visit"]


def test_parquet_timestamps_out_of_range_are_reported_not_a_crash(provider):
    buf = io.BytesIO()
    stamps = pa.array([dt.datetime(2020, 1, 1).timestamp() * 1000] * 30 + [10**16, -(10**15)], pa.int64())
    table = pa.table({"when": stamps.cast(pa.timestamp("ms")), "kwh": [1.5] * 31 + [float("nan")]})
    pq.write_table(table, buf)
    dataset = create(provider, buf.getvalue(), "meters.parquet")
    assert dataset.validation == "valid" and dataset.row_count == 32
    schema = {
        "columns": [
            {"name": "when", "type": "datetime", "min": "2000-01-01", "max": "2030-01-01"},
            {"name": "kwh", "type": "float", "min": 0, "max": 10},
        ]
    }
    dataset = dataset_schema_declare(dataset=dataset, actor=provider, schema=schema, public_row_count=30)
    dataset = dataset_validate(dataset_id=dataset.pk)
    assert _issues(dataset) == {"when": {"above_max": 1, "below_min": 1}, "kwh": {"not_number": 1}}


def test_the_report_reaches_the_owner_only(provider, staff, buyer, api):
    dataset = create(provider, MESSY)
    dataset = dataset_schema_declare(dataset=dataset, actor=provider, schema=MESSY_SCHEMA, public_row_count=50)
    dataset = dataset_validate(dataset_id=dataset.pk)
    dataset_transition(dataset=dataset, actor=provider, action="submit")
    dataset = dataset_transition(dataset=dataset, actor=staff, action="approve", reason="ok")
    owner = Client()
    owner.force_login(provider)
    private_page = page(owner, "frontend:dataset-commitment", dataset).content.decode()
    assert "2 cells not a number" in private_page
    assert "4 columns with cells" in page(owner, "frontend:dataset", dataset).content.decode()
    assert client_for(provider).get(f"/api/v1/datasets/{dataset.pk}/").json()["schema_report"]["columns"]
    for client in (api, client_for(buyer)):
        body = client.get(f"/api/v1/datasets/{dataset.pk}/").json()
        assert "schema_report" not in body
    visitor = Client()
    visitor.force_login(buyer)
    public_page = page(visitor, "frontend:dataset", dataset).content.decode()
    assert "not a number" not in public_page and "columns with cells" not in public_page
    assert "do not fit" not in public_page and "Cells that do not fit" not in public_page


# --- holdout fraction and the cumulative delta cap -------------------------------------------


def test_delta_total_is_at_least_delta_per_job_and_shown_beside_epsilon(provider, staff, buyer):
    dataset = make_dataset(owner=provider)
    assert dataset.delta_total == 1e-4 and dataset.holdout_fraction == 0.2
    with pytest.raises(InvalidInput, match="at least the delta per job") as excinfo:
        dataset_update(dataset=dataset, actor=provider, fields=ListingFields(delta=1e-5, delta_total=1e-6))
    assert excinfo.value.code == "invalid_budget"
    with pytest.raises(InvalidInput) as excinfo:
        dataset_update(dataset=dataset, actor=provider, fields=ListingFields(holdout_fraction=0.6))
    assert excinfo.value.code == "invalid_holdout_fraction"
    owner = client_for(provider)
    response = owner.patch(f"/api/v1/datasets/{dataset.pk}/", {"delta_total": 1e-7}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_budget"
    response = owner.patch(
        f"/api/v1/datasets/{dataset.pk}/", {"delta_total": 5e-4, "holdout_fraction": 0.3}, format="json"
    )
    assert response.status_code == 200 and response.json()["delta_total"] == 5e-4
    assert response.json()["holdout_fraction"] == 0.3
    listed = make_dataset(owner=provider, status="listed", moderator=staff)
    dataset_update(dataset=listed, actor=provider, fields=ListingFields(delta_total="0.0005"))
    visitor = Client()
    visitor.force_login(buyer)
    body = page(visitor, "frontend:dataset", listed).content.decode()
    assert "Total delta, all jobs" in body and "δ = 0.0005" in body
    assert client_for(buyer).get(f"/api/v1/datasets/{listed.pk}/").json()["delta_total"] == 5e-4


def test_settings_form_sets_delta_total_and_holdout(provider):
    dataset = make_dataset(owner=provider)
    client = Client()
    client.force_login(provider)
    url = reverse("frontend:dataset-edit", args=[dataset.pk])
    form = {
        "title": "Renamed",
        "licence": "CC-BY-4.0",
        "price": "1",
        "price_token": "USDC",
        "epsilon_total": "8",
        "epsilon_per_job": "2",
        "delta": "0.00001",
    }
    assert 'name="delta_total" value="0.0001"' in client.get(url).content.decode()
    assert client.post(url, {**form, "delta_total": "0.000001"}).status_code == 400
    assert client.post(url, {**form, "delta_total": "0.001", "holdout_fraction": "0.25"}).status_code == 302
    dataset.refresh_from_db()
    assert dataset.delta_total == 0.001 and dataset.holdout_fraction == 0.25


@pytest.mark.django_db
def test_a_listed_dataset_without_a_row_count_gets_one_once_and_its_schema_stays_locked(provider, staff, api):
    # As the migration leaves datasets listed before row counts were declared.
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    Dataset.objects.filter(pk=dataset.pk).update(public_row_count=None)
    api.force_authenticate(provider)
    url = f"/api/v1/datasets/{dataset.pk}/schema/"
    declared = dataset.declared_schema
    edited = {"columns": [{**declared["columns"][0], "description": "changed"}, *declared["columns"][1:]]}
    refused = api.put(url, {**edited, "public_row_count": 30}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "schema_locked"
    added = api.put(url, {**declared, "public_row_count": 30}, format="json")
    assert added.status_code == 200 and added.json()["public_row_count"] == 30
    again = api.put(url, {**declared, "public_row_count": 40}, format="json")
    assert again.status_code == 409, "only once: a public figure does not move afterwards"
    dataset.refresh_from_db()
    assert dataset.public_row_count == 30 and dataset.declared_schema == declared


@pytest.mark.django_db
def test_a_listed_dataset_without_a_row_count_still_cannot_be_deleted_by_its_owner(provider, staff, api):
    dataset = make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
    Dataset.objects.filter(pk=dataset.pk).update(public_row_count=None)
    api.force_authenticate(provider)
    response = api.delete(f"/api/v1/datasets/{dataset.pk}/")
    assert response.status_code == 409 and response.json()["code"] == "not_deletable"
    assert Dataset.objects.filter(pk=dataset.pk).exists()
