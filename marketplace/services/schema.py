"""Reading a bounded sample of an uploaded file, proposing a schema from it, and validating
the schema a provider declares.

The declared schema is public metadata and all later preprocessing uses it instead of
statistics of the private rows, so proposals are deliberately coarse: numeric bounds are
rounded outward to a power of ten of the column's span, and categories seen only a handful of
times in a large sample are left out (rare values identify people). The provider confirms or
edits every value."""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings

from marketplace.errors import InvalidFile, InvalidSchema

COLUMN_TYPES = ("integer", "float", "boolean", "categorical", "datetime", "text")
MAX_COLUMNS = 500
MAX_CATEGORIES = 100
PROPOSE_MAX_CATEGORIES = 50
PARQUET_MAGIC = b"PAR1"


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
    sample = fh.read(limit + 1)
    if not sample.strip():
        raise InvalidFile("The CSV file is empty.", code="empty_file")
    if b"\0" in sample:
        raise InvalidFile("This is not a text CSV file (it contains binary data).", code="malformed_csv")
    if sample.startswith(PARQUET_MAGIC):
        raise InvalidFile("This looks like a Parquet file: give it a .parquet name.", code="malformed_csv")
    if len(sample) > limit:
        # Only whole lines go into the sample.
        cut = sample.rfind(b"\n", 0, limit)
        if cut <= 0:
            raise InvalidFile(
                f"The first line is longer than {limit:,} bytes: is this really a CSV file?",
                code="malformed_csv",
            )
        sample = sample[: cut + 1]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(sample),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=max(len(sample), 1 << 16)),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
        )
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
        if parquet.metadata.num_rows == 0:
            return parquet.schema_arrow.empty_table()
        batch = next(parquet.iter_batches(batch_size=settings.DATASET_SCHEMA_SAMPLE_ROWS))
    except (pa.ArrowException, OSError, StopIteration) as exc:
        raise InvalidFile(f"The Parquet file cannot be read: {_arrow_message(exc)}", code="invalid_parquet") from exc
    return pa.Table.from_batches([batch])


def _arrow_message(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0][:300]


# --- proposing ---------------------------------------------------------------------------


def _round_out(lo: float, hi: float) -> tuple[float, float]:
    span = hi - lo
    scale = span if span > 0 else max(abs(lo), abs(hi), 1.0)
    step = 10 ** math.floor(math.log10(scale))
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def _clean_number(value: float, integer: bool) -> float | int:
    if integer:
        return int(round(value))
    return float(f"{value:.10g}")


def schema_propose(table: pa.Table) -> dict[str, Any]:
    """Propose a declared schema from a sample table (see the module docstring)."""
    rows = table.num_rows
    # A value seen once in the sample may be one person's: never propose it (the owner can add it).
    min_count = min(5, max(2, rows // 200))
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
            values = [v for v in non_null.to_pylist() if v is not None]
            if values:
                lo, hi = min(values), max(values)
                lo_d = lo.date() if isinstance(lo, dt.datetime) else lo
                hi_d = hi.date() if isinstance(hi, dt.datetime) else hi
                spec["min"] = dt.date(lo_d.year, 1, 1).isoformat()
                spec["max"] = dt.date(hi_d.year + 1, 1, 1).isoformat()
        else:
            counts = non_null.cast(pa.string()).value_counts().to_pylist() if len(non_null) else []
            distinct = len(counts)
            if 0 < distinct <= PROPOSE_MAX_CATEGORIES and distinct <= max(2, rows // 2):
                kept = sorted(str(c["values"]) for c in counts if c["counts"] >= min_count)
                spec["type"] = "categorical"
                spec["categories"] = kept or sorted(str(c["values"]) for c in counts)
                left_out = distinct - len(kept)
                if kept and left_out:
                    spec["description"] = f"{left_out} rare value(s) left out of the proposal."
            else:
                spec["type"] = "text"
                lengths = pa.compute.utf8_length(non_null.cast(pa.string())) if len(non_null) else None
                longest = pa.compute.max(lengths).as_py() if lengths is not None else 0
                spec["max_length"] = int(_round_out(0, max(longest or 1, 1))[1])
        columns.append(spec)
    return {"columns": columns}


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
    if len(raw_columns) > MAX_COLUMNS:
        raise InvalidSchema(f"At most {MAX_COLUMNS} columns are supported.")
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
