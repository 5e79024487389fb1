"""Writing datasets: upload, metadata, declared schema, mock file, full-file validation, and the
dataset's sealed secrets (commitment salt, holdout key).

The public commitment to a file is ``"0x" + SHA-256(salt || file bytes)`` with a 256-bit salt
from ``secrets``, sealed (AES-256-GCM) under a key derived from the platform's master key. Without
the salt a candidate file cannot be tested against the commitment; the owner is shown the salt
and can re-derive it."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import math
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.crypto import DecryptionError, master_key
from common.errors import Conflict, InvalidFile, InvalidInput, PermissionDenied
from common.markdown import markdown_render
from common.tasks import enqueue
from marketplace.contained import UploadLimitExceeded, contained_call, limits_for
from marketplace.models import Dataset, Licence, ModerationLogEntry, Tag, User
from marketplace.services import storage
from marketplace.services.schema import (
    csv_header_check,
    csv_scan,
    file_format_detect,
    parquet_scan,
    sample_propose,
    schema_validate,
)
from marketplace.uploads import too_large

logger = logging.getLogger(__name__)

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
MAX_TAGS = 10
SCHEMA_EDITABLE = {Dataset.Status.DRAFT, Dataset.Status.REJECTED}
HOLDOUT_MAX = 0.5
PUBLIC_ROW_COUNT_MAX = 10**12
SECRET_BYTES = 32
COMMITMENT_FORMULA = '"0x" + hex(SHA-256(salt || file bytes)), salt = commitment_salt hex-decoded (32 bytes)'


# --- sealed per-dataset secrets ------------------------------------------------------------

_SEAL_VERSION = b"\x01"
_SEAL_INFO = b"ppdx dataset secret v1"
SALT_PURPOSE = "commitment-salt"
HOLDOUT_PURPOSE = "holdout-key"


def _seal_aead() -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(master_key())
    return AESGCM(key)


def secret_seal(secret: bytes, *, purpose: str) -> bytes:
    """``secret`` sealed under the platform key (AES-256-GCM, random nonce). ``purpose`` is the
    associated data, so a sealed salt can never be opened as a holdout key or vice versa."""
    nonce = secrets.token_bytes(12)
    return _SEAL_VERSION + nonce + _seal_aead().encrypt(nonce, secret, purpose.encode())


def secret_open(sealed: bytes | memoryview, *, purpose: str) -> bytes:
    """The secret sealed by ``secret_seal``; ``DecryptionError`` when it is missing, corrupt or
    sealed under another key or purpose."""
    sealed = bytes(sealed or b"")
    if len(sealed) < 1 + 12 + 16 or not sealed.startswith(_SEAL_VERSION):
        raise DecryptionError(f"The dataset's {purpose} is missing.")
    try:
        return _seal_aead().decrypt(sealed[1:13], sealed[13:], purpose.encode())
    except InvalidTag as exc:
        raise DecryptionError(f"The dataset's {purpose} was sealed under another key or is corrupt.") from exc


def secret_new(*, purpose: str) -> tuple[bytes, bytes]:
    """A fresh 256-bit secret from the OS and its sealed form."""
    secret = secrets.token_bytes(SECRET_BYTES)
    return secret, secret_seal(secret, purpose=purpose)


def commitment_compute(*, salt: bytes, chunks: Iterable[bytes]) -> str:
    """``"0x" + SHA-256(salt || chunks...)`` in hex."""
    digest = hashlib.sha256(salt)
    for piece in chunks:
        digest.update(piece)
    return "0x" + digest.hexdigest()


def dataset_commitment_salt(*, dataset: Dataset) -> bytes:
    """The dataset's 32-byte commitment salt. For the owner's page and the trusted runner only."""
    return secret_open(dataset.commitment_salt_sealed, purpose=SALT_PURPOSE)


def dataset_commitment_of(*, dataset: Dataset, chunks: Iterable[bytes]) -> str:
    """The commitment that the file whose bytes are ``chunks`` would have under this dataset's
    salt ("0x"-hex); equal to ``dataset.commitment`` exactly when it is the dataset's file."""
    return commitment_compute(salt=dataset_commitment_salt(dataset=dataset), chunks=chunks)


def dataset_holdout_key(*, dataset: Dataset) -> str:
    """The dataset's secret holdout key, 64 hex characters. For the trusted runner only: it is
    never shown to anyone, so no buyer can choose which rows are held out."""
    return secret_open(dataset.holdout_key_sealed, purpose=HOLDOUT_PURPOSE).hex()


def dataset_commitment_check(*, dataset: Dataset, actor: User, file: BinaryIO) -> bool:
    """Whether ``file`` is the dataset's file, by its commitment. Owner (and staff) only: to
    anyone else this would be exactly the confirmation oracle the salt exists to prevent."""
    if not (actor.is_authenticated and (actor.is_staff or dataset.owner_id == actor.pk)):
        raise PermissionDenied("Only the dataset's owner can check a file against its commitment.")
    if not dataset.commitment:
        raise Conflict("This dataset has no commitment yet.", code="no_commitment")
    if hasattr(file, "seek"):
        file.seek(0)
    chunks = iter(lambda: file.read(storage.READ_CHUNK), b"")
    return secrets.compare_digest(dataset_commitment_of(dataset=dataset, chunks=chunks), dataset.commitment)


_SIZE_UNITS = ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"))


def _size_label(power: int) -> tuple[int, str]:
    unit_size, unit = next(u for u in _SIZE_UNITS if power >= u[0])
    return power // unit_size, unit


def size_bucket_of(size: int) -> str:
    """A coarse public label for a file size, by powers of ten of bytes: "< 1 MB", "1–10 MB",
    "100 MB–1 GB"... (the exact size stays private)."""
    if size < 10**6:
        return "< 1 MB"
    low = 10 ** (len(str(int(size))) - 1)  # floor(log10(size)) without float error
    (a, low_unit), (b, high_unit) = _size_label(low), _size_label(low * 10)
    return f"{a}–{b} {high_unit}" if low_unit == high_unit else f"{a} {low_unit}–{b} {high_unit}"


class _CommittingReader:
    """Reads a source file while hashing salt || bytes read; rewinding restarts the hash."""

    def __init__(self, source: BinaryIO, salt: bytes) -> None:
        self._source = source
        self._salt = salt
        self._digest = hashlib.sha256(salt)

    def read(self, size: int = -1) -> bytes:
        piece = self._source.read(size)
        self._digest.update(piece)
        return piece

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise OSError("A committing reader can only be rewound to the start.")
        self._digest = hashlib.sha256(self._salt)
        return self._source.seek(0)

    def commitment(self) -> str:
        return "0x" + self._digest.hexdigest()


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
    delta_total: float | str | None = None
    holdout_fraction: float | str | None = None


def decimal_parse(value: Any, *, field: str) -> Decimal:
    """Parse a user-supplied number, raising ``InvalidInput`` with code ``invalid_<field>``."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"{field} must be a number.", code="invalid_" + field) from exc
    if not number.is_finite():
        raise InvalidInput(f"{field} must be a finite number.", code="invalid_" + field)
    return number


def _float_parse(value: Any, *, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} must be a number.", code="invalid_" + field) from exc
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be a finite number.", code="invalid_" + field)
    return number


def holdout_fraction_parse(value: Any) -> float:
    """The owner's holdout fraction, 0 (no holdout) to 0.5, or ``InvalidInput``."""
    fraction = _float_parse(value, field="holdout_fraction")
    if not 0 <= fraction <= HOLDOUT_MAX:
        raise InvalidInput(
            f"The holdout fraction must be between 0 and {HOLDOUT_MAX} (e.g. 0.2 holds out 20% of the rows).",
            code="invalid_holdout_fraction",
        )
    return fraction


def public_row_count_parse(value: Any) -> int:
    """The owner's declared (public) row count, a whole number from 1, or ``InvalidInput``."""
    if isinstance(value, bool):
        value = None
    try:
        number = Decimal(str(value).strip().replace(",", "").replace("_", ""))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput("The public row count must be a whole number.", code="invalid_public_row_count") from exc
    if not number.is_finite() or number != number.to_integral_value():
        raise InvalidInput("The public row count must be a whole number.", code="invalid_public_row_count")
    if not 1 <= number <= PUBLIC_ROW_COUNT_MAX:
        raise InvalidInput(
            f"The public row count must be at least 1 and at most {PUBLIC_ROW_COUNT_MAX:,}.",
            code="invalid_public_row_count",
        )
    return int(number)


def public_row_count_suggest(row_count: int | None) -> int | None:
    """The private row count rounded to 2 significant figures: what the confirm form pre-fills."""
    if not row_count or row_count < 1:
        return None
    digits = len(str(int(row_count)))
    if digits <= 2:
        return int(row_count)
    step = 10 ** (digits - 2)
    return max(1, int((Decimal(row_count) / step).to_integral_value(rounding="ROUND_HALF_UP")) * step)


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
        # Checked against the size and nesting caps, then rendered once here: pages show the
        # stored HTML and never parse Markdown per request.
        dataset.description_html = markdown_render(fields.description)
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
        dataset.delta = _float_parse(fields.delta, field="delta")
    if fields.delta_total is not None:
        dataset.delta_total = _float_parse(fields.delta_total, field="delta_total")
    if fields.holdout_fraction is not None:
        dataset.holdout_fraction = holdout_fraction_parse(fields.holdout_fraction)
    if not (Decimal("0") < Decimal(dataset.epsilon_total) <= Decimal("1000")):
        raise InvalidInput("The total epsilon must be above 0 and at most 1000.", code="invalid_budget")
    if not (Decimal("0") < Decimal(dataset.epsilon_per_job) <= Decimal(dataset.epsilon_total)):
        raise InvalidInput("The epsilon per job must be above 0 and at most the total epsilon.", code="invalid_budget")
    if not (math.isfinite(dataset.delta) and 0 < dataset.delta < 1e-2):
        raise InvalidInput("delta must be above 0 and below 0.01 (typically below 1/rows).", code="invalid_budget")
    if not (math.isfinite(dataset.delta_total) and dataset.delta <= dataset.delta_total < 1):
        raise InvalidInput(
            "The total delta (all jobs together) must be at least the delta per job and below 1.",
            code="invalid_budget",
        )
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
    # Parsed in a child under memory and time limits: a small file can expand enormously.
    proposed = sample_propose(fh=file, file_format=file_format)["proposal"]

    salt, dataset.commitment_salt_sealed = secret_new(purpose=SALT_PURPOSE)
    _key, dataset.holdout_key_sealed = secret_new(purpose=HOLDOUT_PURPOSE)
    reader = _CommittingReader(file, salt)
    stored = storage.encrypted_file_store(source=reader)  # type: ignore[arg-type]
    try:
        if stored.size == 0:
            raise InvalidFile("The file is empty.", code="empty_file")
        with transaction.atomic():
            dataset.storage_name = stored.name
            dataset.file_size = stored.size
            dataset.file_sha256 = stored.sha256
            dataset.commitment = reader.commitment()
            dataset.size_bucket = size_bucket_of(stored.size)
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
    try:
        enqueue("marketplace.tasks.dataset_validate_task", dataset_id, on_commit=False)
    except Exception:  # the upload is safe; the beat task resumes pending validations
        logger.exception("Could not enqueue validation of dataset %s", dataset_id)


def _require_owner(dataset: Dataset, actor: User) -> None:
    if dataset.owner_id != actor.pk:
        raise PermissionDenied("Only the dataset's owner can change it.")


# What a buyer reads on a listing and a moderator approved: an owner's change to it on a dataset
# that has been approved waits for a moderator (``Dataset.pending_edit``).
PUBLIC_TEXT_FIELDS = ("title", "description", "description_html", "licence")
EDIT_REVIEWED_STATUSES = frozenset({Dataset.Status.LISTED, Dataset.Status.DELISTED})


def dataset_public_text(dataset: Dataset) -> dict[str, Any]:
    """The public text a listing shows now (the approved one), in ``pending_edit``'s shape."""
    return {
        **{name: getattr(dataset, name) for name in PUBLIC_TEXT_FIELDS},
        "tags": sorted(t.name for t in dataset.tags.all()),
    }


def dataset_update(*, dataset: Dataset, actor: User, fields: ListingFields) -> Dataset:
    """Owner edits the listing metadata.

    On a listed (or delisted) dataset a change to the public text (title, description, tags,
    licence) is not shown: it is kept as ``pending_edit`` for a moderator
    (``moderation.dataset_edit_decide``) while the listing, its buyers and their jobs carry on with
    the approved text. A later edit replaces the pending one; an edit back to the approved text
    withdraws it. Price and privacy terms apply at once, as before. Runs under SELECT FOR UPDATE
    on the dataset row, so a moderator's decision and an edit do not interleave."""
    _require_owner(dataset, actor)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.status not in EDIT_REVIEWED_STATUSES:
            tags = _apply_fields(locked, fields, creating=False)
            locked.save()
            if tags is not None:
                _tags_set(locked, tags)
            return locked
        approved = dataset_public_text(locked)
        previous = locked.pending_edit or approved
        # The edit builds on the pending text (what the owner last wrote), not the live one.
        for name in PUBLIC_TEXT_FIELDS:
            setattr(locked, name, previous[name])
        tags = _apply_fields(locked, fields, creating=False)
        proposed = {
            **{name: getattr(locked, name) for name in PUBLIC_TEXT_FIELDS},
            "tags": sorted(tags) if tags is not None else previous["tags"],
        }
        for name in PUBLIC_TEXT_FIELDS:
            setattr(locked, name, approved[name])
        if proposed == approved:
            locked.pending_edit, locked.pending_edit_at = None, None
        elif proposed != locked.pending_edit:
            locked.pending_edit, locked.pending_edit_at = proposed, timezone.now()
            ModerationLogEntry.objects.create(
                dataset=locked,
                actor=actor,
                action=ModerationLogEntry.Action.SUBMIT_EDIT,
                from_status=locked.status,
                to_status=locked.status,
                reason=_edit_summary(approved, proposed),
            )
        locked.save()
    return locked


def _edit_summary(approved: dict[str, Any], proposed: dict[str, Any]) -> str:
    changed = [name for name in ("title", "description", "tags", "licence") if approved[name] != proposed[name]]
    return "Changed: " + ", ".join(changed) + "."


def dataset_schema_declare(
    *,
    dataset: Dataset,
    actor: User,
    schema: Any,
    public_row_count: int | str | None = None,
    holdout_fraction: float | str | None = None,
) -> Dataset:
    """Owner confirms (or edits) the schema and declares the public approximate row count (the
    runner derives batch sampling and steps from it, never from the private count); optionally
    the holdout fraction. Required: ``public_row_count`` (it may be left out only when editing a
    schema that already has one). Allowed only before review, since buyers and jobs rely on a
    listed dataset's schema. The full-file check then re-runs against the declared schema."""
    _require_owner(dataset, actor)
    file_columns = [c["name"] for c in (dataset.proposed_schema or {}).get("columns", [])] or None
    normalised = schema_validate(schema, file_columns=file_columns)
    if public_row_count is None or public_row_count == "":
        if dataset.public_row_count is None:
            raise InvalidInput(
                "Declare the public row count (about how many rows the file has; it will be public).",
                code="invalid_public_row_count",
            )
        rows = dataset.public_row_count
    else:
        rows = public_row_count_parse(public_row_count)
    fraction = holdout_fraction_parse(holdout_fraction) if holdout_fraction is not None else None
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if (
            locked.status not in SCHEMA_EDITABLE
            and locked.public_row_count is None
            and locked.declared_schema == normalised
            and fraction is None
        ):
            # A dataset listed before row counts were declared: its owner may add the count once,
            # the schema unchanged (jobs on it are refused until then).
            locked.public_row_count = rows
            locked.save(update_fields=["public_row_count", "updated_at"])
            return locked
        if locked.status not in SCHEMA_EDITABLE:
            raise Conflict(
                f"The schema can change only while the dataset is a draft or rejected (it is {locked.status}).",
                code="schema_locked",
            )
        locked.declared_schema = normalised
        locked.schema_confirmed_at = timezone.now()
        locked.public_row_count = rows
        fields = ["declared_schema", "schema_confirmed_at", "public_row_count", "updated_at"]
        if fraction is not None:
            locked.holdout_fraction = fraction
            fields.append("holdout_fraction")
        locked.save(update_fields=fields)
        dataset_id = locked.pk
        transaction.on_commit(lambda: _enqueue_validation(dataset_id))
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
    columns = sample_propose(fh=file, file_format="csv", propose=False)["columns"]
    expected = [c["name"] for c in dataset.declared_schema["columns"]]
    if columns != expected:
        raise InvalidFile(
            f"The mock file's columns must be the declared columns, in order: {', '.join(expected)}.",
            code="mock_columns_mismatch",
        )
    file.seek(0)
    probe = file.read(limit + 1)
    if len(probe) > limit:
        raise too_large(limit)
    name = storage.public_file_store(source=io.BytesIO(_mock_comma_csv(probe)), suffix=".csv")
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


def _mock_comma_csv(data: bytes) -> bytes:
    """A mock CSV as served: UTF-8 without a BOM, comma-separated (downloads and their formula
    escaping read commas), whatever separator the owner's file used."""
    delimiter = csv_header_check(data, complete=True) or ","
    if delimiter == "," and not data.startswith(b"\xef\xbb\xbf"):
        return data
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InvalidFile(f"The mock file is not a valid CSV file: {exc}", code="malformed_csv") from exc
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


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

        def files_delete() -> None:
            for name in names:
                storage.stored_file_delete(name)

        transaction.on_commit(files_delete)


# --- full-file validation (worker) ---------------------------------------------------------


def _validation_limits():
    return limits_for(
        memory_bytes=settings.DATASET_VALIDATION_MEMORY_BYTES, seconds=settings.DATASET_VALIDATION_SECONDS
    )


def dataset_validate(*, dataset_id: int) -> Dataset:
    """Read the whole private file once and record whether it parses, its row count and the
    report of cells that do not fit the schema (declared, else proposed), per column; all three
    are private to the owner. A cell that does not fit never fails validation: jobs coerce it
    (clamp, or the public default) and the report tells the owner. Safe to run twice.

    The parsing runs in a child process under ``DATASET_VALIDATION_MEMORY_BYTES`` and
    ``DATASET_VALIDATION_SECONDS`` (``marketplace.contained``); this process only decrypts and
    feeds it. A file past a limit ends ``invalid`` with a sentence naming the limit, and no row
    count or report is kept from a pass that did not finish."""
    dataset = Dataset.objects.get(pk=dataset_id)
    total = max(dataset.file_size, 1)
    last_reported = [0]
    schema = dataset.declared_schema or dataset.proposed_schema or {}
    against = "declared" if dataset.declared_schema else "proposed"
    checked = {c["name"]: c for c in schema.get("columns", []) if isinstance(c, dict) and "name" in c}

    def progress(consumed: int) -> None:
        pct = min(99, consumed * 100 // total)
        if pct >= last_reported[0] + 5:
            last_reported[0] = pct
            Dataset.objects.filter(pk=dataset_id).update(validation_progress=pct)

    status, detail, rows, counts = Dataset.Validation.VALID, "", None, {}
    limits = _validation_limits()
    what = "checking an upload"
    try:
        chunks = storage.encrypted_file_chunks(dataset.storage_name)
        expected = [c["name"] for c in dataset.proposed_schema.get("columns", [])]
        if dataset.file_format == Dataset.FileFormat.CSV:
            # Decrypted chunks go to the child through a pipe: no plaintext on disk.
            scanned = contained_call(
                csv_scan, expected, checked, limits=limits, what=what, feed=chunks, on_progress=progress
            )
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
                scanned = contained_call(parquet_scan, str(path), checked, limits=limits, what=what)
        rows, counts = int(scanned["rows"]), scanned["counts"]
        if not rows:
            status, detail = Dataset.Validation.INVALID, "The file has no data rows."
    except UploadLimitExceeded as exc:
        status, detail, rows = Dataset.Validation.INVALID, exc.detail, None
    except (InvalidFile, OSError, ValueError) as exc:
        reason = exc.detail if isinstance(exc, InvalidFile) else str(exc)
        status, detail = Dataset.Validation.INVALID, f"The file does not parse past the sample: {reason[:500]}"
        rows = None
    report: dict[str, Any] = {}
    if status == Dataset.Validation.VALID:
        report = {
            "against": against,
            # Which declaration it was checked against (a newer one makes this report stale).
            "schema_confirmed_at": dataset.schema_confirmed_at.isoformat() if dataset.schema_confirmed_at else None,
            "checked_at": timezone.now().isoformat(),
            "columns": [{"name": name, "issues": counts[name]} for name in checked if counts.get(name)],
        }
    Dataset.objects.filter(pk=dataset_id).update(
        validation=status,
        validation_detail=detail,
        validation_progress=100,
        row_count=rows,
        schema_report=report,
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
