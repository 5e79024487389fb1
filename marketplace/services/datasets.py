"""Writing datasets: upload, metadata, declared schema, mock file, full-file validation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.errors import Conflict, InvalidFile, InvalidInput, PermissionDenied
from marketplace.models import Dataset, Licence, Tag, User
from marketplace.services import storage
from marketplace.services.schema import file_format_detect, sample_table, schema_propose, schema_validate
from marketplace.uploads import too_large

logger = logging.getLogger(__name__)

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
MAX_TAGS = 10
SCHEMA_EDITABLE = {Dataset.Status.DRAFT, Dataset.Status.REJECTED}


@dataclass
class ListingFields:
    """Listing metadata. ``None`` means "leave unchanged" for updates."""

    title: str | None = None
    description: str | None = None
    tags: Iterable[str] | None = None
    licence: str | None = None
    price: Decimal | str | float | None = None
    price_token: str | None = None
    epsilon_total: Decimal | str | float | None = None
    epsilon_per_job: Decimal | str | float | None = None
    delta: float | str | None = None


def decimal_parse(value: Any, *, field: str) -> Decimal:
    """Parse a user-supplied number, raising ``InvalidInput`` with code ``invalid_<field>``."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"{field} must be a number.", code="invalid_" + field) from exc
    if not number.is_finite():
        raise InvalidInput(f"{field} must be a finite number.", code="invalid_" + field)
    return number


def tags_normalise(tags: Iterable[str] | str) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    out: list[str] = []
    for tag in tags:
        tag = str(tag).strip().lower().replace(" ", "-")
        if not tag:
            continue
        if not TAG_RE.match(tag):
            raise InvalidInput(f"Tag '{tag}' may use only letters, digits and dashes (max 50).", code="invalid_tags")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidInput(f"At most {MAX_TAGS} tags.", code="invalid_tags")
    return out


def _apply_fields(dataset: Dataset, fields: ListingFields, *, creating: bool) -> list[str] | None:
    """Validate and copy listing fields onto ``dataset``; return normalised tags (or None)."""
    if fields.title is not None or creating:
        title = (fields.title or "").strip()
        if not title:
            raise InvalidInput("A title is required.", code="invalid_title")
        if len(title) > 200:
            raise InvalidInput("The title is longer than 200 characters.", code="invalid_title")
        dataset.title = title
    if fields.description is not None:
        if len(fields.description) > 20_000:
            raise InvalidInput("The description is longer than 20,000 characters.", code="invalid_description")
        dataset.description = fields.description
    if fields.licence is not None:
        if fields.licence not in Licence.values:
            raise InvalidInput(
                f"Unknown licence '{fields.licence}'; use one of {', '.join(Licence.values)}.", code="invalid_licence"
            )
        dataset.licence = fields.licence
    if fields.price is not None:
        price = decimal_parse(fields.price, field="price")
        if price < 0:
            raise InvalidInput("The price cannot be negative.", code="invalid_price")
        if price >= Decimal("1e12"):
            raise InvalidInput("The price is too large.", code="invalid_price")
        dataset.price = price.quantize(Decimal("0.000001"))
    if fields.price_token is not None:
        token = fields.price_token.strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{1,12}", token):
            raise InvalidInput("The payment token symbol must be 1-12 letters or digits.", code="invalid_price_token")
        dataset.price_token = token
    if fields.epsilon_total is not None:
        dataset.epsilon_total = decimal_parse(fields.epsilon_total, field="epsilon_total")
    if fields.epsilon_per_job is not None:
        dataset.epsilon_per_job = decimal_parse(fields.epsilon_per_job, field="epsilon_per_job")
    if fields.delta is not None:
        try:
            dataset.delta = float(fields.delta)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("delta must be a number.", code="invalid_delta") from exc
    if not (Decimal("0") < Decimal(dataset.epsilon_total) <= Decimal("1000")):
        raise InvalidInput("The total epsilon must be above 0 and at most 1000.", code="invalid_budget")
    if not (Decimal("0") < Decimal(dataset.epsilon_per_job) <= Decimal(dataset.epsilon_total)):
        raise InvalidInput("The epsilon per job must be above 0 and at most the total epsilon.", code="invalid_budget")
    if not (math.isfinite(dataset.delta) and 0 < dataset.delta < 1e-2):
        raise InvalidInput("delta must be above 0 and below 0.01 (typically below 1/rows).", code="invalid_budget")
    return tags_normalise(fields.tags) if fields.tags is not None else None


def _tags_set(dataset: Dataset, names: list[str]) -> None:
    tags = [Tag.objects.get_or_create(name=name)[0] for name in names]
    dataset.tags.set(tags)


def dataset_create(*, owner: User, file: BinaryIO, filename: str | None = None, fields: ListingFields) -> Dataset:
    """Publish a draft dataset: validate the file from a bounded sample, propose a schema,
    stream the file encrypted into storage, and create the row. Nothing is left behind if any
    step fails. Full-file validation then runs on the worker."""
    filename = os.path.basename(filename or getattr(file, "name", "") or "")
    if not filename:
        raise InvalidInput("The file needs a name ending in .csv or .parquet.", code="unsupported_format")
    file_format = file_format_detect(filename)
    declared_size = getattr(file, "size", None)
    if isinstance(declared_size, int) and declared_size > settings.DATASET_MAX_UPLOAD_BYTES:
        raise too_large(settings.DATASET_MAX_UPLOAD_BYTES)
    dataset = Dataset(owner=owner, file_format=file_format, original_filename=filename[:255])
    tags = _apply_fields(dataset, fields, creating=True) or []
    proposed = schema_propose(sample_table(fh=file, file_format=file_format))

    stored = storage.encrypted_file_store(source=file)
    try:
        if stored.size == 0:
            raise InvalidFile("The file is empty.", code="empty_file")
        with transaction.atomic():
            dataset.storage_name = stored.name
            dataset.file_size = stored.size
            dataset.file_sha256 = stored.sha256
            dataset.proposed_schema = proposed
            dataset.save()
            _tags_set(dataset, tags)
            dataset_id = dataset.pk
            transaction.on_commit(lambda: _enqueue_validation(dataset_id))
    except BaseException:
        storage.stored_file_delete(stored.name)
        raise
    return dataset


def _enqueue_validation(dataset_id: int) -> None:
    from marketplace.tasks import dataset_validate_task

    try:
        dataset_validate_task.delay(dataset_id)
    except Exception:  # the upload is safe; the beat task resumes pending validations
        logger.exception("Could not enqueue validation of dataset %s", dataset_id)


def _require_owner(dataset: Dataset, actor: User) -> None:
    if dataset.owner_id != actor.pk:
        raise PermissionDenied("Only the dataset's owner can change it.")


def dataset_update(*, dataset: Dataset, actor: User, fields: ListingFields) -> Dataset:
    """Owner edits the listing metadata."""
    _require_owner(dataset, actor)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        tags = _apply_fields(locked, fields, creating=False)
        locked.save()
        if tags is not None:
            _tags_set(locked, tags)
    return locked


def dataset_schema_declare(*, dataset: Dataset, actor: User, schema: Any) -> Dataset:
    """Owner confirms (or edits) the schema. Allowed only before review, since buyers and jobs
    rely on a listed dataset's schema."""
    _require_owner(dataset, actor)
    file_columns = [c["name"] for c in (dataset.proposed_schema or {}).get("columns", [])] or None
    normalised = schema_validate(schema, file_columns=file_columns)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.status not in SCHEMA_EDITABLE:
            raise Conflict(
                f"The schema can change only while the dataset is a draft or rejected (it is {locked.status}).",
                code="schema_locked",
            )
        locked.declared_schema = normalised
        locked.schema_confirmed_at = timezone.now()
        locked.save(update_fields=["declared_schema", "schema_confirmed_at", "updated_at"])
    return locked


def dataset_mock_upload(*, dataset: Dataset, actor: User, file: BinaryIO, filename: str | None = None) -> Dataset:
    """Owner uploads their own mock CSV. It must parse and have exactly the declared columns."""
    _require_owner(dataset, actor)
    if not dataset.declared_schema:
        raise Conflict("Confirm the schema before uploading a mock file.", code="schema_not_declared")
    filename = os.path.basename(filename or getattr(file, "name", "") or "mock.csv")
    if file_format_detect(filename) != "csv":
        raise InvalidFile("A mock file must be a CSV file.", code="unsupported_format")
    limit = settings.DATASET_MAX_MOCK_UPLOAD_BYTES
    size = getattr(file, "size", None)
    if isinstance(size, int) and size > limit:
        raise too_large(limit)
    table = sample_table(fh=file, file_format="csv")
    expected = [c["name"] for c in dataset.declared_schema["columns"]]
    if table.column_names != expected:
        raise InvalidFile(
            f"The mock file's columns must be the declared columns, in order: {', '.join(expected)}.",
            code="mock_columns_mismatch",
        )
    file.seek(0)
    probe = file.read(limit + 1)
    if len(probe) > limit:
        raise too_large(limit)
    name = storage.public_file_store(source=io.BytesIO(probe), suffix=".csv")
    try:
        with transaction.atomic():
            locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
            old = locked.mock_storage_name
            locked.mock_storage_name = name
            locked.mock_filename = filename[:255]
            locked.save(update_fields=["mock_storage_name", "mock_filename", "updated_at"])
            if old:
                transaction.on_commit(lambda: storage.stored_file_delete(old))
    except BaseException:
        storage.stored_file_delete(name)
        raise
    return locked


def dataset_mock_remove(*, dataset: Dataset, actor: User) -> Dataset:
    _require_owner(dataset, actor)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        old = locked.mock_storage_name
        locked.mock_storage_name = ""
        locked.mock_filename = ""
        locked.save(update_fields=["mock_storage_name", "mock_filename", "updated_at"])
        if old:
            transaction.on_commit(lambda: storage.stored_file_delete(old))
    return locked


def dataset_delete(*, dataset: Dataset, actor: User) -> None:
    """Owner deletes a dataset that never went live (draft or rejected), file included."""
    _require_owner(dataset, actor)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.status not in SCHEMA_EDITABLE:
            raise Conflict(
                "Only draft or rejected datasets can be deleted; ask a moderator to delist it.", code="not_deletable"
            )
        names = [locked.storage_name, locked.mock_storage_name]
        locked.delete()
        transaction.on_commit(lambda: [storage.stored_file_delete(n) for n in names])


# --- full-file validation (worker) ---------------------------------------------------------


class _DecryptedReader(io.RawIOBase):
    """A forward-only file object over the decrypted chunks of a stored file."""

    def __init__(self, chunks) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        # Read by the caller for progress; readinto may run on Arrow's I/O thread, so it must
        # not touch the database itself.
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            piece = next(self._chunks, None)
            if piece is None:
                return 0
            self._buffer = piece
            self.consumed += len(piece)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def dataset_validate(*, dataset_id: int) -> Dataset:
    """Read the whole private file once and record whether it parses, and its row count
    (private to the owner). Safe to run twice."""
    dataset = Dataset.objects.get(pk=dataset_id)
    total = max(dataset.file_size, 1)
    last_reported = [0]

    def progress(consumed: int) -> None:
        pct = min(99, consumed * 100 // total)
        if pct >= last_reported[0] + 5:
            last_reported[0] = pct
            Dataset.objects.filter(pk=dataset_id).update(validation_progress=pct)

    status, detail, rows = Dataset.Validation.VALID, "", None
    try:
        chunks = storage.encrypted_file_chunks(dataset.storage_name)
        if dataset.file_format == Dataset.FileFormat.CSV:
            source = _DecryptedReader(chunks)
            reader = pacsv.open_csv(
                io.BufferedReader(source, buffer_size=1 << 20),
                read_options=pacsv.ReadOptions(block_size=1 << 22, use_threads=False),
            )
            rows = 0
            for batch in reader:
                rows += batch.num_rows
                progress(source.consumed)
            expected = [c["name"] for c in dataset.proposed_schema.get("columns", [])]
            if expected and reader.schema.names != expected:
                raise InvalidFile("The header changed while validating.")
        else:
            with tempfile.TemporaryDirectory(prefix="ppdx-validate-") as tmp:
                os.chmod(tmp, 0o700)
                path = Path(tmp) / "data.parquet"
                with open(path, "wb") as out:
                    consumed = 0
                    for piece in chunks:
                        out.write(piece)
                        consumed += len(piece)
                        progress(consumed)
                parquet = pq.ParquetFile(path)
                rows = 0
                for group in range(parquet.num_row_groups):
                    rows += parquet.read_row_group(group).num_rows
        if not rows:
            status, detail = Dataset.Validation.INVALID, "The file has no data rows."
    except (pa.ArrowException, InvalidFile, OSError, ValueError) as exc:
        status, detail = Dataset.Validation.INVALID, f"The file does not parse past the sample: {str(exc)[:500]}"
        rows = None
    Dataset.objects.filter(pk=dataset_id).update(
        validation=status,
        validation_detail=detail,
        validation_progress=100,
        row_count=rows,
        updated_at=timezone.now(),
    )
    dataset.refresh_from_db()
    return dataset


def validations_resume(*, older_than_seconds: int = 600) -> list[int]:
    """Re-enqueue validations still pending long after upload (a lost message, a dead worker)."""
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_seconds)
    ids = list(
        Dataset.objects.filter(validation=Dataset.Validation.PENDING, updated_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:100]
    )
    for dataset_id in ids:
        _enqueue_validation(dataset_id)
    return ids


def storage_orphans_sweep(*, older_than_seconds: int = 3600) -> list[str]:
    """Delete stored files that no dataset row points at (left by a crash mid-upload)."""
    store = storage.dataset_storage()
    known = set(Dataset.objects.values_list("storage_name", flat=True)) | set(
        Dataset.objects.exclude(mock_storage_name="").values_list("mock_storage_name", flat=True)
    )
    removed = []
    cutoff = timezone.now().timestamp() - older_than_seconds
    for prefix in (storage.PRIVATE_PREFIX, storage.MOCK_PREFIX):
        try:
            _dirs, files = store.listdir(prefix.rstrip("/"))
        except FileNotFoundError:
            continue
        for fname in files:
            name = prefix + fname
            if name in known:
                continue
            try:
                modified = store.get_modified_time(name).timestamp()
            except (NotImplementedError, OSError):
                continue
            if modified < cutoff:
                storage.stored_file_delete(name)
                removed.append(name)
    if removed:
        logger.warning("Removed %d orphan dataset file(s)", len(removed))
    return removed


def csv_bytes(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()
