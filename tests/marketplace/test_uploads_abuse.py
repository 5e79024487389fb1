"""Hostile uploads get a clear answer, never a 500, and cannot take a process down.

* A CSV that is not UTF-8 (Latin-1, UTF-16, binary) is a form error on the page and a JSON 400
  with code ``not_utf8`` on the API; a UTF-8 BOM is fine.
* A CSV header of 100,000 columns, or one line with no end, is refused from the first chunk of
  the upload (``too_many_columns``, ``header_too_long``), before the rest is read or stored.
* ``;``, tab and ``|`` separated files are read with their own separator, by the upload check,
  the full-file check and the DP runner alike.
* A Parquet file is checked from its footer (columns, uncompressed size) before any data is
  read, and parsed only in a child process under memory and time limits: a 60 KB file that
  expands to 1.3 GB fails its sample on the upload request, or its full check on a real Celery
  worker, with a message naming the limit, and both processes carry on."""

from __future__ import annotations

import io
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.test import Client

from common.errors import InvalidFile
from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.run import run_spec
from marketplace.contained import UploadLimitExceeded, contained_call, limits_for
from marketplace.models import Dataset
from marketplace.services.datasets import (
    ListingFields,
    dataset_create,
    dataset_mock_upload,
    dataset_schema_declare,
    dataset_validate,
)
from marketplace.services.schema import csv_header_check
from marketplace.services.storage import dataset_storage
from marketplace.uploads import EncryptedTemporaryFileUploadHandler
from tests.conftest import client_for, named_file
from tests.worker_support import real_worker, wait_for  # noqa: F401 - real_worker: a fixture

pytestmark = pytest.mark.django_db

FORM = {
    "title": "Survey",
    "licence": "CC-BY-4.0",
    "price": "1",
    "price_token": "USDC",
    "epsilon_total": "10",
    "epsilon_per_job": "1",
    "delta": "1e-6",
    "delta_total": "1e-5",
}
MiB = 1024**2


def rows_csv(delimiter: str, rows: int = 120, bom: bool = False) -> bytes:
    lines = [delimiter.join(["age", "region", "score"])]
    lines += [delimiter.join([str(20 + i % 50), ["north", "south"][i % 2], f"{i % 10}.5"]) for i in range(rows)]
    return (b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode()


def web_post(user, data: bytes, name: str):
    client = Client()
    client.force_login(user)
    return client.post("/datasets/new/", {**FORM, "file": named_file(data, name)})


def api_post(user, data: bytes, name: str):
    return client_for(user).post("/api/v1/datasets/", {**FORM, "file": named_file(data, name)}, format="multipart")


def stored_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


LATIN1 = "prénom,ville\n".encode("latin-1") + "José,Zürich\n".encode("latin-1") * 30
LATIN1_LATE = b"name,city\n" + b"Jose,Zurich\n" * 5 + "José,Zürich\n".encode("cp1252") * 20
UTF16 = "name,city\n".encode("utf-16") + "Ana,Porto\n".encode("utf-16-le") * 30
BINARY = bytes(range(256)) * 64
WIDE = b",".join(b"c%d" % i for i in range(100_000)) + b"\n" + b"1\n" * 10
ENDLESS = b"a" * (400 * 1024)

BAD_CSVS = [
    pytest.param(LATIN1, "not_utf8", "byte 0xE9 on line 1 of the header", id="latin1-header"),
    pytest.param(
        LATIN1_LATE, "not_utf8", "20 of its first 27 lines are not valid UTF-8, the first on line 7", id="cp1252"
    ),
    pytest.param(UTF16, "not_utf8", "looks like UTF-16", id="utf16"),
    pytest.param(BINARY, "malformed_csv", "not UTF-8 text: it contains binary data", id="binary"),
    pytest.param(WIDE, "too_many_columns", "columns; at most 500 are supported", id="100k-columns"),
    pytest.param(ENDLESS, "header_too_long", "longer than 262,144 bytes", id="endless-header"),
]


@pytest.mark.parametrize(("data", "code", "phrase"), BAD_CSVS)
def test_bad_csv_is_a_form_error_and_a_json_400_and_nothing_is_kept(provider, isolated_storage, data, code, phrase):
    page = web_post(provider, data, "people.csv")
    assert page.status_code == 400
    body = page.content.decode()
    assert "data-upload-form" in body  # still on the upload form, not an error page
    assert phrase in body
    if "UTF" in phrase or "binary" in phrase:
        assert "Save it as UTF-8 CSV" in body

    answer = api_post(provider, data, "people.csv")
    assert answer.status_code == 400
    assert answer["Content-Type"].startswith("application/json")
    assert answer.json()["code"] == code and phrase in answer.json()["detail"]
    assert not Dataset.objects.exists()
    assert stored_files(isolated_storage) == []


def test_wide_header_is_refused_at_the_first_chunk_of_the_upload():
    handler = EncryptedTemporaryFileUploadHandler()
    handler.new_file("file", "wide.csv", "text/csv", None)
    chunk = 64 * 1024
    with pytest.raises(InvalidFile) as excinfo:
        handler.receive_data_chunk(WIDE[:chunk], 0)
    assert excinfo.value.code == "too_many_columns"
    assert handler.file.closed  # the encrypted spool is gone, nothing more was read


def test_column_cap_is_the_schemas_500(settings):
    assert csv_header_check(b",".join(b"c%d" % i for i in range(500)) + b"\n") == ","
    with pytest.raises(InvalidFile, match="501 columns"):
        csv_header_check(b";".join(b"c%d" % i for i in range(501)) + b"\n")
    # A quoted separator is not a column: counted exactly when the cheap count is over.
    quoted = b",".join(b'"a,%d"' % i for i in range(400)) + b"\n"
    assert csv_header_check(quoted) == ","


@pytest.mark.parametrize(
    ("delimiter", "bom"), [(";", True), ("\t", False), ("|", False)], ids=["semicolon-bom", "tab", "bar"]
)
def test_separated_csv_gives_its_columns_end_to_end(provider, tmp_path, delimiter, bom):
    data = rows_csv(delimiter, bom=bom)
    answer = api_post(provider, data, "survey.csv")
    assert answer.status_code == 201, answer.content
    proposed = answer.json()["proposed_schema"]["columns"]
    assert [(c["name"], c["type"]) for c in proposed] == [
        ("age", "integer"),
        ("region", "categorical"),
        ("score", "float"),
    ]
    dataset = Dataset.objects.get(pk=answer.json()["id"])
    dataset = dataset_validate(dataset_id=dataset.pk)
    assert dataset.validation == Dataset.Validation.VALID, dataset.validation_detail
    assert dataset.row_count == 120
    dataset = dataset_schema_declare(
        dataset=dataset, actor=provider, schema=answer.json()["proposed_schema"], public_row_count=120
    )

    # The runner reads the stored file with the same separator.
    data_file = tmp_path / "dataset.csv"
    data_file.write_bytes(data)
    params = parameters_normalize(
        "dp-statistics",
        {"columns": ["age", "score", "region"]},
        schema=dataset.declared_schema,
        epsilon_max=1.0,
        delta_max=1e-5,
    )
    spec = {
        "algorithm": "dp-statistics",
        "parameters": params,
        "schema": dataset.declared_schema,
        "data_file": str(data_file),
        "data_format": "csv",
        "eval_file": None,
        "output_dir": str(tmp_path / "out"),
        "threads": 1,
        "public_rows": 120,
    }
    (tmp_path / "out").mkdir()
    stream = io.StringIO()
    assert run_spec(spec, stream=stream) == 0, stream.getvalue()[-500:]
    doc = json.loads((tmp_path / "out" / "statistics.json").read_text())
    by_name = {c["name"]: c for c in doc["columns"]}
    assert set(by_name) == {"age", "score", "region"}
    age = by_name["age"]
    assert abs(age["count"]["value"] - 120) <= max(5 * age["count"]["noise_std"], 24)
    assert 30 <= age["mean"]["value"] <= 60  # true mean 44.5 within [20, 70] bounds: read as numbers
    assert by_name["region"]["histogram"]["categories"] == ["north", "south"]


def test_semicolon_mock_is_served_comma_separated(provider):
    dataset = dataset_create(
        owner=provider, file=named_file(rows_csv(";"), "survey.csv"), fields=ListingFields(title="Survey")
    )
    dataset_schema_declare(dataset=dataset, actor=provider, schema=dataset.proposed_schema, public_row_count=120)
    dataset.refresh_from_db()
    dataset = dataset_mock_upload(
        dataset=dataset, actor=provider, file=named_file(rows_csv(";", rows=30, bom=True), "mock.csv")
    )
    with dataset_storage().open(dataset.mock_storage_name, "rb") as fh:
        served = fh.read()
    assert served.startswith(b"age,region,score\n20,north,0.5\n")


def test_a_mock_not_in_utf8_is_a_form_error(provider):
    dataset = dataset_create(
        owner=provider, file=named_file(rows_csv(","), "survey.csv"), fields=ListingFields(title="Survey")
    )
    dataset_schema_declare(dataset=dataset, actor=provider, schema=dataset.proposed_schema, public_row_count=120)
    client = Client()
    client.force_login(provider)
    mock = b"age,region,score\n" + "30,Zürich,1.5\n".encode("latin-1") * 10
    page = client.post(f"/datasets/{dataset.pk}/mock/", {"file": named_file(mock, "mock.csv")})
    assert page.status_code == 400
    assert "The file is not UTF-8 text: 10 of its first 12 lines" in page.content.decode()
    dataset.refresh_from_db()
    assert dataset.mock_storage_name == ""


# --- Parquet --------------------------------------------------------------------------------------


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def dictionary_bomb(*, rows: int = 20_000, width: int = 64 * 1024, lead: int = 0) -> bytes:
    """About 60 KB that decode to rows x width bytes (1.3 GB): one long string, dictionary-encoded
    and repeated. The footer honestly reports a quarter of a megabyte uncompressed. ``lead`` plain
    rows first, in a row group of their own, so a sample of the first rows looks harmless."""
    schema = pa.schema([("id", pa.int64()), ("note", pa.dictionary(pa.int32(), pa.string()))])
    buf = io.BytesIO()
    # Without the stored Arrow schema the reader decodes the dictionary into plain strings.
    with pq.ParquetWriter(buf, schema, compression="zstd", store_schema=False) as writer:
        if lead:
            notes = pa.DictionaryArray.from_arrays(pa.array([0, 1] * (lead // 2), pa.int32()), pa.array(["ok", "no"]))
            writer.write_table(pa.table({"id": pa.array(range(lead), pa.int64()), "note": notes}, schema=schema))
        notes = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * width]))
        writer.write_table(pa.table({"id": pa.array(range(rows), pa.int64()), "note": notes}, schema=schema))
    return buf.getvalue()


def test_parquet_footer_is_checked_before_any_data_is_read(provider, settings, isolated_storage):
    settings.DATASET_MAX_ROW_GROUP_BYTES = 4 * MiB
    zeros = parquet_bytes(
        pa.table({"z": pa.array([0] * 2_000_000, pa.int64())}), compression="zstd", use_dictionary=False
    )
    assert len(zeros) < 100_000  # 16 MB of data in a few KB
    answer = api_post(provider, zeros, "zeros.parquet")
    assert answer.status_code == 400
    assert answer.json()["code"] == "uncompressed_too_large"
    size = pq.ParquetFile(io.BytesIO(zeros)).metadata.row_group(0).total_byte_size
    assert size > 4 * MiB
    assert f"Row group 1 of the file holds {size / MiB:.1f} MiB uncompressed" in answer.json()["detail"]
    assert "at most 4 MiB" in answer.json()["detail"]

    settings.DATASET_MAX_ROW_GROUP_BYTES = 512 * MiB
    settings.DATASET_MAX_UNCOMPRESSED_BYTES = 8 * MiB
    answer = api_post(provider, zeros, "zeros.parquet")
    assert answer.json()["code"] == "uncompressed_too_large" and "8 MiB" in answer.json()["detail"]

    wide = parquet_bytes(pa.table({f"c{i}": [1] for i in range(501)}))
    answer = api_post(provider, wide, "wide.parquet")
    assert answer.json() == {"code": "too_many_columns", "detail": answer.json()["detail"]}
    assert "501 columns; at most 500" in answer.json()["detail"]
    assert not Dataset.objects.exists() and stored_files(isolated_storage) == []


def test_parquet_bomb_fails_its_sample_under_the_memory_limit_and_the_server_carries_on(
    provider, settings, isolated_storage
):
    settings.DATASET_SAMPLE_MEMORY_BYTES = 256 * MiB
    bomb = dictionary_bomb()
    assert len(bomb) < 100_000
    started = time.monotonic()
    answer = api_post(provider, bomb, "bomb.parquet")
    assert answer.status_code == 400
    assert answer.json()["code"] == "file_limit_exceeded"
    assert "more than 256 MiB of memory, the limit for reading a sample of an upload" in answer.json()["detail"]
    assert time.monotonic() - started < 30

    page = web_post(provider, bomb, "bomb.parquet")
    assert page.status_code == 400 and "data-upload-form" in page.content.decode()
    assert "more than 256 MiB of memory" in page.content.decode()
    assert not Dataset.objects.exists() and stored_files(isolated_storage) == []

    # Same process, next upload: fine.
    assert api_post(provider, rows_csv(","), "fine.csv").status_code == 201


def _sleep_forever() -> None:
    while True:
        time.sleep(1)


def test_contained_call_stops_a_reader_that_runs_too_long():
    started = time.monotonic()
    with pytest.raises(UploadLimitExceeded, match="longer than 1 second, the limit for checking an upload"):
        contained_call(_sleep_forever, limits=limits_for(memory_bytes=64 * MiB, seconds=1), what="checking an upload")
    assert time.monotonic() - started < 5


# --- the full check on a real Celery worker -------------------------------------------------------


@pytest.fixture
def limited_worker(request, monkeypatch):
    # The worker is another process: its limits come from the environment, as in production.
    monkeypatch.setenv("DATASET_VALIDATION_MEMORY_BYTES", str(256 * MiB))
    return request.getfixturevalue("real_worker")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_parquet_bomb_fails_validation_on_a_real_worker_which_survives(limited_worker, provider):
    bomb = dataset_create(
        owner=provider,
        file=named_file(dictionary_bomb(lead=10_000), "bomb.parquet"),
        fields=ListingFields(title="Small on the outside"),
    )
    assert [c["name"] for c in bomb.proposed_schema["columns"]] == ["id", "note"]  # the sample was harmless

    def settled(pk):
        return lambda: Dataset.objects.get(pk=pk).validation != Dataset.Validation.PENDING

    wait_for(settled(bomb.pk), log=limited_worker["log"])
    bomb.refresh_from_db()
    assert bomb.validation == Dataset.Validation.INVALID
    assert bomb.validation_detail.startswith("Reading the file needs more than 256 MiB of memory, the limit for")
    assert bomb.row_count is None and bomb.schema_report == {}  # nothing kept from the pass that stopped

    # The owner sees why, on the page and over the API.
    client = Client()
    client.force_login(provider)
    assert "more than 256 MiB of memory" in client.get(f"/datasets/{bomb.pk}/").content.decode()
    detail = client_for(provider).get(f"/api/v1/datasets/{bomb.pk}/").json()
    assert detail["validation"] == "invalid" and "256 MiB" in detail["validation_detail"]

    # The same worker goes on to validate the next upload.
    good = dataset_create(
        owner=provider, file=named_file(rows_csv(";"), "good.csv"), fields=ListingFields(title="Fine")
    )
    wait_for(settled(good.pk), log=limited_worker["log"])
    good.refresh_from_db()
    assert good.validation == Dataset.Validation.VALID and good.row_count == 120


# --- through gunicorn (threaded worker: the sample's fork happens in a process with threads) ------


def _multipart(fields: dict[str, str], name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "----ppdx" + "b" * 16
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_hostile_uploads_with_400s_and_keeps_its_worker(tmp_path, provider):
    import http.client

    from rest_framework.authtoken.models import Token

    from tests.gunicorn_support import gunicorn_server, production_env

    token = Token.objects.create(user=provider).key
    env = production_env(tmp_path, DATASET_SAMPLE_MEMORY_BYTES=str(256 * MiB))
    args = ["--workers", "1", "--threads", "4", "--timeout", "60"]

    def call(method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Token {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(raw) if kind.startswith("application/json") else {"raw": raw[:200]}

    with gunicorn_server(tmp_path, args=args, env=env) as server:
        port, log = server.port, server.log
        fields = {k: v for k, v in FORM.items()}
        for name, data, code in (
            ("bomb.parquet", dictionary_bomb(), "file_limit_exceeded"),
            ("people.csv", LATIN1, "not_utf8"),
            ("wide.csv", WIDE, "too_many_columns"),
            ("utf16.csv", UTF16, "not_utf8"),
        ):
            status, answer = call("POST", "/api/v1/datasets/", *_multipart(fields, name, data))
            assert (status, answer.get("code")) == (400, code), (name, status, answer)
        status, answer = call("POST", "/api/v1/datasets/", *_multipart(fields, "survey.csv", rows_csv("\t")))
        assert status == 201, answer
        assert [c["name"] for c in answer["proposed_schema"]["columns"]] == ["age", "region", "score"]
        assert call("GET", "/healthz/")[0] == 200
        text = log.read_text()
        assert text.count("Booting worker") == 1 and "SIGSEGV" not in text, text[-3000:]


def test_an_interrupted_check_leaves_no_child_behind():
    import os

    def interrupt(_fed: int) -> None:
        raise KeyboardInterrupt  # as a task's soft time limit interrupts the caller

    children_before = set(os.listdir("/proc"))
    with pytest.raises(KeyboardInterrupt):
        contained_call(
            lambda stream: _sleep_forever(),
            limits=limits_for(memory_bytes=64 * MiB, seconds=30),
            what="checking an upload",
            feed=iter([b"x" * 10]),
            on_progress=interrupt,
        )
    time.sleep(0.2)
    mine = [
        pid for pid in set(os.listdir("/proc")) - children_before if pid.isdigit() and _parent_of(pid) == os.getpid()
    ]
    assert mine == []


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
