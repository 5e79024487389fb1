"""Reading a bounded sample of an uploaded file, proposing a schema from it, and validating
the schema a provider declares.

The declared schema is public metadata and all later preprocessing uses it instead of
statistics of the private rows, so proposals are deliberately coarse: numeric bounds are
rounded outward to a power of ten, datetime bounds to whole years, and categories seen fewer than
20 times in the sample are left out (rare values identify people). The provider confirms or
edits every value.

``schema_check`` counts, per column, the cells of a batch that do not fit a schema, for the
owner's report (``Dataset.schema_report``).

Reading an upload is bounded twice: cheap checks before any data is parsed (a CSV's header line
as it arrives, ``csv_header_check``; a Parquet footer's column count and uncompressed sizes,
``parquet_metadata_check``), then the parsing itself in a child process under memory and time
limits (``marketplace.contained``), both for the sample read while the upload waits
(``sample_propose``) and for the full pass on the worker (``csv_scan``, ``parquet_scan``).

A CSV must be UTF-8 (a BOM is allowed) and may separate fields with ``,`` ``;`` tab or ``|``,
detected from the header line the same way the runner detects it."""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import io
import math
from types import ModuleType
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from common.errors import InvalidFile, InvalidSchema
from common.limits import human_bytes as _human_bytes

COLUMN_TYPES = ("integer", "float", "boolean", "categorical", "datetime", "text")
MAX_COLUMNS = 500  # the default of settings.DATASET_MAX_COLUMNS
MAX_CATEGORIES = 100
PROPOSE_MAX_CATEGORIES = 50
PARQUET_MAGIC = b"PAR1"
SAVE_AS_UTF8 = (
    'Save it as UTF-8 CSV (in Excel: "CSV UTF-8"; in LibreOffice: character set Unicode (UTF-8)) and upload it again.'
)


def max_columns() -> int:
    return int(getattr(settings, "DATASET_MAX_COLUMNS", MAX_COLUMNS))


def _not_utf8(reason: str, *, code: str = "not_utf8") -> InvalidFile:
    # Binary content keeps the older code "malformed_csv" (API clients switch on codes).
    return InvalidFile(f"The file is not UTF-8 text: {reason}. {SAVE_AS_UTF8}", code=code)


def _utf8_strict(data: bytes, *, what: str) -> str:
    """``data`` decoded as UTF-8, or ``InvalidFile`` (code ``not_utf8``) naming the line and byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex().upper()
        guess = " (it looks like Latin-1 or Windows-1252)" if data[exc.start] >= 0x80 else ""
        raise _not_utf8(f"byte 0x{byte} on line {line} of {what} is not valid UTF-8{guess}") from None


def _utf8_sample_check(sample: bytes) -> None:
    """Refuse a sample in another encoding; a few stray undecodable cells are the owner's
    report's business (``bad_utf8``), as they are in the rest of the file."""
    try:
        sample.decode("utf-8")
        return
    except UnicodeDecodeError:
        pass
    lines = sample.split(b"\n")
    bad = []
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, line[exc.start]))
    if len(bad) > max(2, len(lines) // 100):
        number, byte = bad[0]
        guess = " (it looks like Latin-1 or Windows-1252)" if byte >= 0x80 else ""
        raise _not_utf8(
            f"{len(bad):,} of its first {len(lines):,} lines are not valid UTF-8, the first on line {number} "
            f"at byte 0x{byte:02X}{guess}"
        )


def csv_header_check(head: bytes, *, complete: bool = False) -> str | None:
    """Check the start of an arriving CSV before anything big is read or stored; return its
    delimiter, or None while the header line has not fully arrived (``complete``: the whole file
    is ``head``). Raises ``InvalidFile``: not UTF-8 (UTF-16 and binary included), a header line
    over ``DATASET_MAX_HEADER_BYTES``, more columns than ``DATASET_MAX_COLUMNS``."""
    limit = settings.DATASET_MAX_HEADER_BYTES
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\0" in head[: limit + len(codecs.BOM_UTF8) + 1]:
        start = head[:512]
        odd, even = start[1::2].count(0), start[0::2].count(0)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (min(odd, even) == 0 and max(odd, even) * 3 >= len(start)):
            raise _not_utf8("it looks like UTF-16 (two bytes per character)")
        raise _not_utf8("it contains binary data (NUL bytes), so it is not a CSV file", code="malformed_csv")
    body = head[len(codecs.BOM_UTF8) :] if head.startswith(codecs.BOM_UTF8) else head
    end = body.find(b"\n")
    if end < 0 and not complete:
        # Not all here yet; refused already if what has come has too many columns.
        _columns_check(body[:limit].decode("utf-8", errors="ignore"), partial=True)
        if len(body) > limit:
            raise InvalidFile(
                f"The header line (the first line) is longer than {limit:,} bytes: is this really a CSV file?",
                code="header_too_long",
            )
        return None
    line = _runner_preprocess()[0].csv_header_line(head)
    if len(line) > limit:
        raise InvalidFile(
            f"The header line (the first line) is longer than {limit:,} bytes: is this really a CSV file?",
            code="header_too_long",
        )
    return _columns_check(_utf8_strict(line, what="the header"))


def _columns_check(text: str, *, partial: bool = False) -> str:
    """The delimiter of a header line (or its start); ``InvalidFile`` past DATASET_MAX_COLUMNS."""
    delimiter = _runner_preprocess()[0].csv_delimiter_detect(text)
    columns = text.count(delimiter) + 1  # an upper bound (quoted separators count too): cheap
    if columns > max_columns():
        import csv

        with contextlib.suppress(csv.Error):  # a field past the csv module's limit: keep the upper bound
            columns = len(next(csv.reader([text], delimiter=delimiter), []))
    if columns > max_columns():
        raise InvalidFile(
            f"The header has {'at least ' if partial else ''}{columns:,} columns; "
            f"at most {max_columns():,} are supported.",
            code="too_many_columns",
        )
    return delimiter


def parquet_metadata_check(metadata: pq.FileMetaData) -> None:
    """Refuse a Parquet file from its footer alone, before any data is read: more columns than
    ``DATASET_MAX_COLUMNS``, a row group larger uncompressed than ``DATASET_MAX_ROW_GROUP_BYTES``,
    or more data uncompressed than ``DATASET_MAX_UNCOMPRESSED_BYTES``. The footer is written by
    the uploader and may lie; the memory limit of the reading process is the backstop."""
    if metadata.num_columns > max_columns():
        raise InvalidFile(
            f"The file has {metadata.num_columns:,} columns; at most {max_columns():,} are supported.",
            code="too_many_columns",
        )
    group_limit = settings.DATASET_MAX_ROW_GROUP_BYTES
    total_limit = settings.DATASET_MAX_UNCOMPRESSED_BYTES
    total = 0
    for index in range(metadata.num_row_groups):
        size = max(0, metadata.row_group(index).total_byte_size)
        if size > group_limit:
            raise InvalidFile(
                f"Row group {index + 1} of the file holds {_human_bytes(size)} uncompressed; one row group may "
                f"hold at most {_human_bytes(group_limit)}. Write the file with smaller row groups "
                "(e.g. pyarrow's row_group_size=100_000).",
                code="uncompressed_too_large",
                extra={"limit_bytes": group_limit},
            )
        total += size
        if total > total_limit:
            raise InvalidFile(
                f"The file holds more than {_human_bytes(total_limit)} of data uncompressed, the limit "
                f"(it is {_human_bytes(total)} or more).",
                code="uncompressed_too_large",
                extra={"limit_bytes": total_limit},
            )


def file_format_detect(filename: str) -> str:
    name = filename.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise InvalidFile(
        f"Unsupported file type for '{filename}': upload a .csv or a .parquet file.",
        code="unsupported_format",
    )


def sample_table(*, fh: BinaryIO, file_format: str) -> pa.Table:
    """Read at most DATASET_SCHEMA_SAMPLE_BYTES / _ROWS of the file into an Arrow table,
    raising ``InvalidFile`` with a readable reason when it is empty or malformed."""
    fh.seek(0)
    if file_format == "csv":
        table = _csv_sample(fh)
    else:
        table = _parquet_sample(fh)
    fh.seek(0)
    if table.num_columns == 0:
        raise InvalidFile("The file has no columns.", code="empty_file")
    if table.num_rows == 0:
        raise InvalidFile("The file has a header but no data rows.", code="empty_file")
    return table.slice(0, settings.DATASET_SCHEMA_SAMPLE_ROWS)


def _csv_sample(fh: BinaryIO) -> pa.Table:
    limit = settings.DATASET_SCHEMA_SAMPLE_BYTES
    read = max(limit, settings.DATASET_MAX_HEADER_BYTES + len(codecs.BOM_UTF8) + 1)
    sample = fh.read(read + 1)
    if not sample.strip():
        raise InvalidFile("The CSV file is empty.", code="empty_file")
    if sample.startswith(PARQUET_MAGIC):
        raise InvalidFile("This looks like a Parquet file: give it a .parquet name.", code="malformed_csv")
    delimiter = csv_header_check(sample, complete=len(sample) <= read)
    if b"\0" in sample[: limit + 1]:
        raise _not_utf8("it contains binary data (NUL bytes), so it is not a CSV file", code="malformed_csv")
    sample = sample[: limit + 1]
    if len(sample) > limit:
        # Only whole lines go into the sample.
        cut = sample.rfind(b"\n", 0, limit)
        if cut <= 0:
            raise InvalidFile(
                f"The first line is longer than {limit:,} bytes: is this really a CSV file?",
                code="malformed_csv",
            )
        sample = sample[: cut + 1]
    _utf8_sample_check(sample)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(sample),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=max(len(sample), 1 << 16)),
            parse_options=pacsv.ParseOptions(delimiter=delimiter or ",", newlines_in_values=False),
        )
    except MemoryError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidFile(f"The CSV file is malformed: {_arrow_message(exc)}", code="malformed_csv") from exc
    names = table.column_names
    if any(not str(n).strip() for n in names):
        raise InvalidFile("Every column needs a name in the header row.", code="malformed_csv")
    if len(set(names)) != len(names):
        raise InvalidFile("Column names in the header row must be unique.", code="malformed_csv")
    return table


def _parquet_sample(fh: BinaryIO) -> pa.Table:
    head = fh.read(4)
    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    tail = b""
    if size >= 8:
        fh.seek(size - 4)
        tail = fh.read(4)
    fh.seek(0)
    if size == 0:
        raise InvalidFile("The Parquet file is empty.", code="empty_file")
    if head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        raise InvalidFile("This is not a Parquet file (its PAR1 markers are missing).", code="invalid_parquet")
    try:
        parquet = pq.ParquetFile(fh)
        parquet_metadata_check(parquet.metadata)
        if parquet.metadata.num_rows == 0:
            return parquet.schema_arrow.empty_table()
        batch = next(parquet.iter_batches(batch_size=settings.DATASET_SCHEMA_SAMPLE_ROWS, use_threads=False))
    except MemoryError:
        raise
    except (pa.ArrowException, OSError, StopIteration) as exc:
        raise InvalidFile(f"The Parquet file cannot be read: {_arrow_message(exc)}", code="invalid_parquet") from exc
    return pa.Table.from_batches([batch])


def _sample_limits():
    from marketplace.contained import limits_for

    return limits_for(memory_bytes=settings.DATASET_SAMPLE_MEMORY_BYTES, seconds=settings.DATASET_SAMPLE_SECONDS)


def _sample_summary(fh: BinaryIO, file_format: str, propose: bool) -> dict[str, Any]:
    table = sample_table(fh=fh, file_format=file_format)
    return {"columns": table.column_names, "proposal": schema_propose(table) if propose else None}


def sample_propose(*, fh: BinaryIO, file_format: str, propose: bool = True) -> dict[str, Any]:
    """``sample_table`` (and ``schema_propose`` of it) in a child process under the sample's
    memory and time limits: ``{"columns": [...names], "proposal": schema or None}``. Raises
    ``InvalidFile`` (``UploadLimitExceeded`` past a limit). ``fh`` is rewound."""
    from marketplace.contained import contained_call

    fh.seek(0)
    try:
        return contained_call(
            _sample_summary, fh, file_format, propose, limits=_sample_limits(), what="reading a sample of an upload"
        )
    finally:
        fh.seek(0)


def _arrow_message(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0][:300]


# --- proposing ---------------------------------------------------------------------------

# A category must be seen at least this many times in the sample to be proposed: rarer values
# may be one person's. The owner types any others they want to declare.
PROPOSE_MIN_CATEGORY_COUNT = 20
RARE_CATEGORIES_NOTE = (
    f"Values seen fewer than {PROPOSE_MIN_CATEGORY_COUNT} times in the sample are not proposed; "
    "type any you want to declare."
)
NO_CATEGORIES_NOTE = (
    f"No value was seen {PROPOSE_MIN_CATEGORY_COUNT} times in the sample, so none is proposed: type the categories."
)
_UNIX_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_UNIT_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _round_out(lo: float, hi: float) -> tuple[float, float]:
    """Round [lo, hi] outward to a grid of a power of ten: that of the span, and never finer than
    two significant figures of the values' magnitude (so a narrow column of large values, say
    1000.3 to 1000.9, is not proposed as its exact extremes)."""
    span = hi - lo
    magnitude = max(abs(lo), abs(hi))
    scale = span if span > 0 else max(magnitude, 1.0)
    exponent = math.floor(math.log10(scale))
    if magnitude > 0:
        exponent = max(exponent, math.floor(math.log10(magnitude)) - 1)
    step = 10.0**exponent
    low, high = math.floor(lo / step) * step, math.ceil(hi / step) * step
    # A constant column is not proposed as min == max (that would state every row's value).
    return low, high if high > low else low + step


def _clean_number(value: float, integer: bool) -> float | int:
    if integer:
        return int(round(value))
    return float(f"{value:.10g}")


def _year_of_days(days: int) -> int:
    """The year of a day count since 1970-01-01, clamped to what ISO dates here can say (1..9999)."""
    ordinal = _UNIX_EPOCH_ORDINAL + days
    if ordinal < 1:
        return 1
    if ordinal > dt.date.max.toordinal():
        return 9999
    return dt.date.fromordinal(ordinal).year


def _datetime_years(column: pa.ChunkedArray) -> tuple[int, int] | None:
    """The first and last year in a timestamp or date column, read from its integer storage, so
    values beyond Python's datetime range (a Parquet timestamp in year 40000) cannot fail."""
    col_type = column.type
    if pa.types.is_timestamp(col_type):
        per_day = _UNIT_PER_DAY[col_type.unit]
        ints = pc.cast(column, pa.int64())
    elif pa.types.is_date32(col_type):
        per_day = 1
        ints = pc.cast(pc.cast(column, pa.int32()), pa.int64())
    else:  # date64: milliseconds
        per_day = _UNIT_PER_DAY["ms"]
        ints = pc.cast(column, pa.int64())
    bounds = pc.min_max(ints).as_py()
    if bounds["min"] is None:
        return None
    return _year_of_days(bounds["min"] // per_day), _year_of_days(bounds["max"] // per_day)


def schema_propose(table: pa.Table) -> dict[str, Any]:
    """Propose a declared schema from a sample table. The proposal becomes public when the owner
    confirms it, so nothing in it is exact: numeric bounds are rounded outward to a coarse grid,
    datetime bounds to whole years, and only categories seen at least
    ``PROPOSE_MIN_CATEGORY_COUNT`` times are proposed. A column's ``note`` (owner only; dropped
    by ``schema_validate``) says what was left for the owner to fill in."""
    rows = table.num_rows
    columns: list[dict[str, Any]] = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        col_type = column.type
        nullable = column.null_count > 0
        spec: dict[str, Any] = {"name": str(name), "nullable": nullable, "description": ""}
        non_null = column.drop_null()
        if pa.types.is_boolean(col_type):
            spec["type"] = "boolean"
        elif pa.types.is_integer(col_type) or pa.types.is_floating(col_type) or pa.types.is_decimal(col_type):
            integer = pa.types.is_integer(col_type)
            spec["type"] = "integer" if integer else "float"
            values = non_null.cast(pa.float64()).to_numpy(zero_copy_only=False) if len(non_null) else []
            finite = [v for v in values if math.isfinite(v)] if len(values) else []
            if finite:
                lo, hi = _round_out(min(finite), max(finite))
                spec["min"], spec["max"] = _clean_number(lo, integer), _clean_number(hi, integer)
            else:
                spec["min"], spec["max"] = 0, 1
        elif pa.types.is_timestamp(col_type) or pa.types.is_date(col_type):
            spec["type"] = "datetime"
            years = _datetime_years(non_null) if len(non_null) else None
            if years is not None:
                spec["min"] = dt.date(years[0], 1, 1).isoformat()
                spec["max"] = dt.date(years[1] + 1, 1, 1).isoformat() if years[1] < 9999 else "9999-12-31"
        else:
            counts = _value_counts(non_null)
            distinct = len(counts)
            if 0 < distinct <= PROPOSE_MAX_CATEGORIES and distinct <= max(2, rows // 2):
                kept = sorted(value for value, count in counts if count >= PROPOSE_MIN_CATEGORY_COUNT)
                spec["type"] = "categorical"
                spec["categories"] = kept
                if not kept:
                    spec["note"] = NO_CATEGORIES_NOTE
                elif len(kept) < distinct:
                    spec["note"] = RARE_CATEGORIES_NOTE
            else:
                spec["type"] = "text"
                lengths = pc.utf8_length(_as_text(non_null)) if len(non_null) else None
                longest = pc.max(lengths).as_py() if lengths is not None else 0
                spec["max_length"] = int(_round_out(0, max(longest or 1, 1))[1])
        columns.append(spec)
    return {"columns": columns}


def _as_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        # Arrow reads a CSV column with bad UTF-8 as binary; undecodable cells count as missing.
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        return _utf8_text(array)[0].drop_null()
    return column.cast(pa.string())


def _value_counts(column: pa.ChunkedArray) -> list[tuple[str, int]]:
    if not len(column):
        return []
    return [(str(c["values"]), int(c["counts"])) for c in _as_text(column).value_counts().to_pylist()]


# --- validating ------------------------------------------------------------------------


def _number(value: Any, *, where: str, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSchema(f"{where} must be a number.")
    if not math.isfinite(value):
        raise InvalidSchema(f"{where} must be a finite number.")
    if integer and not float(value).is_integer():
        raise InvalidSchema(f"{where} must be a whole number for an integer column.")
    return int(value) if integer else float(value)


def _date(value: Any, *, where: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidSchema(f"{where} must be an ISO 8601 date or date-time, e.g. 2024-01-31.") from exc
    return parsed.isoformat() if (parsed.hour or parsed.minute or parsed.second) else parsed.date().isoformat()


def schema_validate(schema: Any, *, file_columns: list[str] | None = None) -> dict[str, Any]:
    """Return the normalised schema or raise ``InvalidSchema`` naming the first problem.

    Rules: at least one column; unique, non-empty names; known types; numeric and datetime
    columns carry min <= max; categorical columns list 1..100 unique categories. When
    ``file_columns`` is given, the names must be exactly the file's columns."""
    if not isinstance(schema, dict) or not isinstance(schema.get("columns"), list):
        raise InvalidSchema('The schema must be an object with a "columns" list.')
    raw_columns = schema["columns"]
    if not raw_columns:
        raise InvalidSchema("The schema needs at least one column.")
    if len(raw_columns) > max_columns():
        raise InvalidSchema(f"At most {max_columns()} columns are supported.")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, col in enumerate(raw_columns, start=1):
        if not isinstance(col, dict):
            raise InvalidSchema(f"Column {index} must be an object.")
        name = str(col.get("name", "")).strip()
        where = f"Column '{name or index}'"
        if not name:
            raise InvalidSchema(f"Column {index} needs a name.")
        if name in seen:
            raise InvalidSchema(f"{where} appears twice.")
        seen.add(name)
        col_type = col.get("type")
        if col_type not in COLUMN_TYPES:
            raise InvalidSchema(f"{where} has unknown type {col_type!r}; use one of {', '.join(COLUMN_TYPES)}.")
        spec: dict[str, Any] = {
            "name": name,
            "type": col_type,
            "nullable": bool(col.get("nullable", False)),
            "description": str(col.get("description", ""))[:500],
        }
        if col_type in ("integer", "float"):
            if col.get("min") is None or col.get("max") is None:
                raise InvalidSchema(f"{where} needs both a min and a max bound.")
            lo = _number(col["min"], where=f"{where} min", integer=col_type == "integer")
            hi = _number(col["max"], where=f"{where} max", integer=col_type == "integer")
            if lo > hi:
                raise InvalidSchema(f"{where}: min ({lo}) must not be greater than max ({hi}).")
            spec["min"], spec["max"] = lo, hi
        elif col_type == "datetime":
            if col.get("min") is None or col.get("max") is None:
                raise InvalidSchema(f"{where} needs both a min and a max date.")
            lo_s, hi_s = _date(col["min"], where=f"{where} min"), _date(col["max"], where=f"{where} max")
            if dt.datetime.fromisoformat(lo_s) > dt.datetime.fromisoformat(hi_s):
                raise InvalidSchema(f"{where}: min ({lo_s}) must not be after max ({hi_s}).")
            spec["min"], spec["max"] = lo_s, hi_s
        elif col_type == "categorical":
            cats = col.get("categories")
            if not isinstance(cats, list) or not cats:
                raise InvalidSchema(f"{where} needs a list of categories.")
            cats = [str(c) for c in cats]
            if len(cats) > MAX_CATEGORIES:
                raise InvalidSchema(f"{where} has more than {MAX_CATEGORIES} categories.")
            if len(set(cats)) != len(cats):
                raise InvalidSchema(f"{where} lists a category twice.")
            spec["categories"] = cats
        elif col_type == "text":
            max_length = col.get("max_length", 255)
            spec["max_length"] = int(_number(max_length, where=f"{where} max_length", integer=True))
            if spec["max_length"] < 1:
                raise InvalidSchema(f"{where} max_length must be at least 1.")
        out.append(spec)
    if file_columns is not None:
        declared = [c["name"] for c in out]
        missing = [c for c in file_columns if c not in seen]
        extra = [c for c in declared if c not in set(file_columns)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing from the schema: {', '.join(missing)}")
            if extra:
                parts.append(f"not in the file: {', '.join(extra)}")
            raise InvalidSchema("The schema's columns must be the file's columns (" + "; ".join(parts) + ").")
    return {"columns": out}


# --- checking cells against a schema (the owner's report) ------------------------------------

# Issue codes counted per column; marketplace.selectors.schema_report words them for the owner.
ISSUES = (
    "bad_utf8",
    "missing",
    "not_number",
    "not_datetime",
    "not_boolean",
    "below_min",
    "above_max",
    "undeclared_category",
    "too_long",
)
# The issue every present cell of a column counts under when its type cannot read the column at all.
_UNREADABLE_ISSUE: dict[str | None, str] = {"integer": "not_number", "float": "not_number", "datetime": "not_datetime"}


# The runner's own CSV reading and cell coercion (compute_to_data/runner: pure, Django-free, bound
# alone into the sandbox), so the checks say exactly what a job will do with each cell. The compute
# app registers its two modules here in its AppConfig.ready(): this base app imports nothing above it.
_runner: tuple[ModuleType, ModuleType] | None = None


def runner_register(*, preprocess: ModuleType, params: ModuleType) -> None:
    global _runner
    _runner = (preprocess, params)


def _runner_preprocess() -> tuple[ModuleType, ModuleType]:
    if _runner is None:
        raise ImproperlyConfigured("No compute app registered the runner's preprocessing (runner_register).")
    return _runner


def csv_null_values() -> list[str]:
    """The cell texts a job reads as missing (the runner's list)."""
    return list(_runner_preprocess()[0].NULL_VALUES)


def _utf8_text(array: pa.Array) -> tuple[pa.Array, int]:
    """``array`` (binary or string) as valid UTF-8 strings, trimmed, with undecodable cells made
    null, and how many there were. Bytes are decoded one by one only when the fast check fails."""
    binary = array.view(pa.large_binary()) if pa.types.is_large_string(array.type) else array
    if pa.types.is_string(binary.type):
        binary = binary.view(pa.binary())
    try:
        text = pc.cast(binary, pa.large_string() if pa.types.is_large_binary(binary.type) else pa.string())
        text.validate(full=True)
        bad = 0
    except pa.ArrowInvalid:
        decoded: list[str | None] = []
        bad = 0
        for cell in binary.to_pylist():
            if cell is None:
                decoded.append(None)
                continue
            try:
                decoded.append(cell.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(None)
                bad += 1
        text = pa.array(decoded, pa.string())
    return pc.utf8_trim_whitespace(text), bad


def _count(mask: Any) -> int:
    import numpy as np

    return int(np.count_nonzero(mask))


def _native_datetime_issues(array: pa.Array, bounds: tuple[float, float] | None) -> dict[str, int]:
    """Out-of-bounds counts of a timestamp or date column compared as integers in its own unit,
    so a value past Python's (or nanoseconds') range is counted, not a crash."""
    import numpy as np

    if bounds is None:
        return {}
    col_type = array.type
    if pa.types.is_timestamp(col_type):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[col_type.unit]
        ints = pc.cast(array, pa.int64())
        low, high = bounds[0] * per_second, bounds[1] * per_second
    elif pa.types.is_date32(col_type):
        ints = pc.cast(pc.cast(array, pa.int32()), pa.int64())
        low, high = bounds[0] / 86_400, bounds[1] / 86_400
    else:
        ints = pc.cast(array, pa.int64())
        low, high = bounds[0] * 1_000, bounds[1] * 1_000
    values = ints.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
    return {"below_min": _count(values < low), "above_max": _count(values > high)}


def schema_check(array: pa.Array | pa.ChunkedArray, column: dict[str, Any]) -> dict[str, int]:
    """How many cells of ``array`` do not fit the declared ``column``, by issue code (``ISSUES``;
    zero counts left out). Never raises on cell contents: bad UTF-8, unparseable text and
    timestamps beyond any library's range are counted, not thrown."""
    import numpy as np

    preprocess, runner_params = _runner_preprocess()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    issues: dict[str, int] = {}
    kind = column.get("type")
    textual = any(
        check(array.type)
        for check in (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_string, pa.types.is_large_string)
    )
    if textual:
        array, issues["bad_utf8"] = _utf8_text(array)
        missing = array.null_count - issues["bad_utf8"]
    else:
        missing = array.null_count
    if not column.get("nullable"):
        issues["missing"] = missing
    present = np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=bool)
    try:
        if kind in ("integer", "float"):
            values = preprocess.numbers(array)
            issues["not_number"] = _count(present & np.isnan(values))
            bounds = runner_params.column_bounds_seconds(column)
            if bounds is not None:
                issues["below_min"] = _count(values < bounds[0])
                issues["above_max"] = _count(values > bounds[1])
        elif kind == "datetime":
            bounds = runner_params.column_bounds_seconds(column)
            if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
                issues.update(_native_datetime_issues(array, bounds))
            else:
                seconds = preprocess.datetimes(array)
                issues["not_datetime"] = _count(present & np.isnan(seconds))
                if bounds is not None:
                    issues["below_min"] = _count(seconds < bounds[0])
                    issues["above_max"] = _count(seconds > bounds[1])
        elif kind == "boolean":
            issues["not_boolean"] = _count(present & np.isnan(preprocess.booleans(array)))
        elif kind == "categorical" and column.get("categories"):
            codes = preprocess.category_codes(array, [str(c) for c in column["categories"]])
            issues["undeclared_category"] = _count(present & (codes < 0))
        elif kind == "text" and column.get("max_length"):
            lengths = pc.utf8_length(array if textual else pc.cast(array, pa.string()))
            too_long = pc.greater(lengths, int(column["max_length"]))
            issues["too_long"] = _count(np.asarray(pc.fill_null(too_long, False).to_numpy(zero_copy_only=False)))
    except MemoryError:
        raise  # a limit of the reading process, not a property of the cells
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        # A type the coercion cannot read at all (it would read every cell as missing).
        issues[_UNREADABLE_ISSUE.get(kind, "missing")] = int(present.sum())
    return {code: count for code, count in issues.items() if count}


def schema_report_merge(total: dict[str, dict[str, int]], batch: dict[str, dict[str, int]]) -> None:
    """Add one batch's per-column counts into ``total`` in place."""
    for name, counts in batch.items():
        into = total.setdefault(name, {})
        for code, count in counts.items():
            into[code] = into.get(code, 0) + count


# --- the full pass over a file (worker, in a limited child) ------------------------------------

SCAN_BATCH_ROWS = 65_536


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: the header is read to detect the delimiter
    before the CSV reader opens the stream."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        if self._head:
            n = min(len(target), len(self._head))
            target[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(target))
        target[: len(data)] = data
        return len(data)


def csv_scan(stream: BinaryIO, expected: list[str], checked: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Parse a whole CSV from ``stream``: ``{"rows": n, "counts": per-column issue counts}``.
    Every cell is read as bytes, so a bad cell (a non-number, bad UTF-8) is counted, not a parse
    error. Raises ``InvalidFile`` when the file does not parse."""
    head = b""
    while b"\n" not in head and len(head) <= settings.DATASET_MAX_HEADER_BYTES + len(codecs.BOM_UTF8):
        piece = stream.read(64 * 1024)
        if not piece:
            break
        head += piece
    delimiter = csv_header_check(head, complete=b"\n" not in head) or ","
    convert = pacsv.ConvertOptions(
        column_types={name: pa.binary() for name in expected},
        null_values=csv_null_values(),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    counts: dict[str, dict[str, int]] = {}
    rows = 0
    try:
        reader = pacsv.open_csv(
            io.BufferedReader(_Prefixed(head, stream), buffer_size=1 << 20),
            read_options=pacsv.ReadOptions(block_size=1 << 22, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=convert,
        )
        if expected and reader.schema.names != expected:
            raise InvalidFile("The header changed while validating.")
        for batch in reader:
            rows += batch.num_rows
            _scan_batch(batch, checked, counts)
    except MemoryError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidFile(_arrow_message(exc), code="malformed_csv") from exc
    return {"rows": rows, "counts": counts}


def parquet_scan(path: str, checked: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Read a whole Parquet file in batches after ``parquet_metadata_check``: like ``csv_scan``."""
    counts: dict[str, dict[str, int]] = {}
    rows = 0
    try:
        parquet = pq.ParquetFile(path)
        parquet_metadata_check(parquet.metadata)
        names = set(parquet.schema_arrow.names)
        columns = [name for name in checked if name in names] or None
        for batch in parquet.iter_batches(batch_size=SCAN_BATCH_ROWS, columns=columns, use_threads=False):
            rows += batch.num_rows
            _scan_batch(batch, checked, counts)
    except MemoryError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidFile(_arrow_message(exc), code="invalid_parquet") from exc
    return {"rows": rows, "counts": counts}


def _scan_batch(batch: pa.RecordBatch, checked: dict[str, dict[str, Any]], counts: dict[str, dict[str, int]]) -> None:
    names = set(batch.schema.names)
    schema_report_merge(
        counts, {name: schema_check(batch.column(name), col) for name, col in checked.items() if name in names}
    )
