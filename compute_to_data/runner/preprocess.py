"""Reading the private table and turning it into model inputs, from the declared schema only.

Every transformation is fixed by the dataset's public declared schema (bounds, categories), never
by statistics of the private rows, so it costs no privacy and the buyer can reproduce it exactly
from the model card:

* integer / float / datetime: clip to the declared [min, max], scale to [0, 1] (min == max -> 0);
  datetimes are seconds since the Unix epoch (naive = UTC) before scaling;
* boolean: true/1/yes/t/y -> 1, false/0/no/f/n -> 0;
* categorical: one-hot over the declared categories in declared order (unknown -> all zeros);
* null or unparseable -> 0 in every output of that column.

Parsing is tolerant and never lets a library's exception message out, because those quote cell
values. One row can never fail a job or change what is released beyond its DP contribution:

* a cell that is null, unparseable (a non-number in a numeric column, an impossible date, bytes
  that are not UTF-8) or out of range (a Parquet timestamp in the year 200000) becomes null,
  then the public default above; out-of-bound numbers are clipped;
* a target with no usable value takes the public default of ``TargetSpec`` (the column's declared
  ``default`` when it has a usable one, else the first class / the middle of the range), so the
  number of rows used is the number of rows read;
* a CSV row with the wrong number of fields is skipped by the parser (it has no columns to
  coerce); dropping or coercing one row changes the data by at most one row, which DP covers;
* only a file that cannot be read at all, or lacks a declared column, fails the job.

Every conversion runs the same vectorised code whatever the values (no per-distinct-value Python
fallback), so its time does not depend on the cells: zoned and naive ISO datetimes go through one
regular expression and integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InvalidData
from .params import column_bounds_seconds, schema_columns

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "none", "#N/A"]
# Field separators a CSV may use, in the order that breaks a tie (a one-column header is ",").
CSV_DELIMITERS = (",", ";", "\t", "|")
# How far into a CSV the header line is looked for; uploads refuse longer headers well before this.
CSV_HEADER_SCAN_BYTES = 4 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
TRUE_WORDS = ["true", "1", "yes", "t", "y", "1.0"]
FALSE_WORDS = ["false", "0", "no", "f", "n", "0.0"]
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


# --- reading ------------------------------------------------------------------------------------


def table_read(path: str | Path, data_format: str, columns: list[str]) -> tuple[dict[str, pa.ChunkedArray], int]:
    """Read ``columns`` of a CSV (every cell as a string) or Parquet file; returns the columns by
    name and the number of data rows. Raises InvalidData with a message of our own (never the
    parser's, which quotes data) when the file is missing, unreadable or lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise InvalidData("The data file is missing.")
    wanted = list(dict.fromkeys(columns))
    try:
        if data_format == "csv":
            table = _csv_read(path, wanted)
        elif data_format == "parquet":
            table = _parquet_read(path, wanted)
        else:
            raise InvalidData("The data format must be csv or parquet.")
    except InvalidData:
        raise
    except Exception:
        raise InvalidData(f"The data file could not be read as {data_format.upper()}.") from None
    return {name: table.column(name) for name in wanted}, table.num_rows


def csv_header_line(head: bytes) -> bytes:
    """The first line of a CSV's leading bytes, without a UTF-8 BOM or the line ending."""
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    return head.split(b"\n", 1)[0].rstrip(b"\r")


def csv_delimiter_detect(header: bytes | str) -> str:
    """The separator of a CSV from its header line alone: the one of ``CSV_DELIMITERS`` that
    splits it into the most fields (quotes respected), the earlier one on a tie. The header is
    public (its names are the schema's), so the choice depends on no private cell, and the
    upload check, the full-file check and the runner all read the file the same way."""
    import csv

    line = header.decode("utf-8", errors="replace") if isinstance(header, bytes) else header
    best, most = CSV_DELIMITERS[0], 1
    for delimiter in CSV_DELIMITERS:
        try:
            fields = len(next(csv.reader([line], delimiter=delimiter), []))
        except csv.Error:  # a field past the csv module's size limit: count separators instead
            fields = line.count(delimiter) + 1
        if fields > most:
            best, most = delimiter, fields
    return best


def csv_file_delimiter(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return csv_delimiter_detect(csv_header_line(fh.read(CSV_HEADER_SCAN_BYTES)))


def _csv_read(path: Path, wanted: list[str]) -> pa.Table:
    import pyarrow.csv as pacsv

    # A ragged row has no columns to coerce: the parser skips it rather than failing the file.
    parse = pacsv.ParseOptions(delimiter=csv_file_delimiter(path), invalid_row_handler=lambda row: "skip")
    # First the header alone (one block), to name a missing column ourselves.
    with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16), parse_options=parse) as reader:
        names = reader.schema.names
    _check_present(names, wanted)
    # Cells are read as bytes: a string column would fail the whole file on one invalid UTF-8
    # cell; ``_strings`` nulls such cells instead.
    convert = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types={name: pa.binary() for name in wanted},
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return pacsv.read_csv(path, convert_options=convert, parse_options=parse)


def _parquet_read(path: Path, wanted: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    _check_present(pq.read_schema(path).names, wanted)
    # Timestamps stay in the file's own unit: coercing them to nanoseconds would overflow (and
    # fail) on one far-future value.
    return pq.read_table(path, columns=wanted, coerce_int96_timestamp_unit="us")


def _check_present(names: list[str], wanted: list[str]) -> None:
    missing = [name for name in wanted if name not in names]
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing[:5])
        raise InvalidData(f"The data file lacks the declared column(s) {shown}.")


# --- typed conversion, tolerant of dirty cells ---------------------------------------------------


def _combined(array: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array


# One well-formed UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF), repeated to the end.
# On binary input Arrow's RE2 runs in Latin-1 mode, so each \\xNN matches one byte.
_UTF8_RE = (
    r"^(?:[\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}"
    r"|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}|[\xF1-\xF3][\x80-\xBF]{3}"
    r"|\xF4[\x80-\x8F][\x80-\xBF]{2})*\z"
)


def _valid_utf8(array: pa.Array) -> pa.Array:
    """A binary array as strings, cells that are not valid UTF-8 turned to null (vectorised)."""
    if pa.types.is_large_binary(array.type):
        array = pc.cast(array, pa.binary())
    ok = pc.fill_null(pc.match_substring_regex(array, _UTF8_RE), False)
    kept = pc.if_else(ok, array, pa.scalar(None, pa.binary()))
    return pc.cast(kept, pa.string())


def _strings(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        array = _valid_utf8(array)
    elif not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    return pc.utf8_trim_whitespace(array)


def numbers(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values with NaN for null, unparseable or non-finite cells."""
    array = _combined(array)
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.int8())
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_decimal(array.type):
        values = pc.cast(array, pa.float64(), safe=False)
    else:
        text = _strings(array)
        # Non-numbers become null first, so the cast itself cannot fail on (and quote) a cell.
        ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER_RE), False)
        values = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
    out = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    out[~np.isfinite(out)] = np.nan
    return out


# The ISO 8601 forms the schema's bounds accept (``datetime.fromisoformat``'s common ones): a date,
# optionally a time to minutes, seconds or fractions, optionally Z or an offset.
_ISO_RE = (
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"(?:(?P<z>Z)|(?P<zs>[+-])(?P<zh>\d{2}):?(?P<zm>\d{2})?)?$"
)
_UNIT_SECONDS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), int64."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _part(parts: pa.StructArray, name: str) -> pa.Array:
    """One named group as strings: "" where it did not take part or the value did not match."""
    return pc.fill_null(pc.struct_field(parts, name), "")


def _field(parts: pa.StructArray, name: str, default: int = 0) -> np.ndarray:
    text = _part(parts, name)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(str(default)), text)
    return pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)


def iso_seconds(text: pa.Array) -> np.ndarray:
    """Seconds since the Unix epoch for ISO date/datetime strings (naive = UTC), NaN for null or
    anything else (an impossible date such as 2021-02-29 included). One regular expression and
    integer arithmetic over the whole array: no per-value Python, same path with or without a
    zone."""
    parts = pc.extract_regex(text, _ISO_RE)
    matched = np.asarray(pc.is_valid(parts).to_numpy(zero_copy_only=False), dtype=bool)
    y, mo, d = _field(parts, "y", 1970), _field(parts, "mo", 1), _field(parts, "d", 1)
    h, mi, sec = _field(parts, "h"), _field(parts, "mi"), _field(parts, "s")
    nanos = pc.cast(pc.utf8_rpad(_part(parts, "f"), width=9, padding="0"), pa.int64()).to_numpy(zero_copy_only=False)
    minus = np.asarray(pc.equal(_part(parts, "zs"), "-").to_numpy(zero_copy_only=False), dtype=bool)
    zh, zm = _field(parts, "zh"), _field(parts, "zm")
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(mo, 1, 12) - 1] + (leap & (mo == 2))
    ok = matched & (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= month_days)
    ok &= (h <= 23) & (mi <= 59) & (sec <= 59) & (zh <= 23) & (zm <= 59)
    offset = np.where(minus, -1, 1) * (zh * 3_600 + zm * 60)
    whole = _days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + sec - offset
    out = whole.astype(np.float64) + nanos / 1e9
    out[~ok] = np.nan
    return out


def datetimes(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Seconds since the Unix epoch as float64 (naive values are UTC), NaN where missing.
    Typed timestamps and dates are read from their integer storage and divided by their unit,
    so no value can overflow a cast (a year-200000 timestamp is just a large number, clipped
    later to the declared bounds)."""
    array = _combined(array)
    if pa.types.is_timestamp(array.type):
        raw = _nan_nulls(array.view(pa.int64()))
        return raw / _UNIT_SECONDS[array.type.unit]
    if pa.types.is_date32(array.type):
        return _nan_nulls(array.view(pa.int32())) * 86_400.0
    if pa.types.is_date64(array.type):
        return _nan_nulls(array.view(pa.int64())) / 1_000.0
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        return numbers(array)  # already epoch seconds
    return iso_seconds(_strings(array))


def _nan_nulls(array: pa.Array) -> np.ndarray:
    filled = pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype(np.float64)
    if array.null_count:
        filled[np.asarray(pc.is_null(array).to_numpy(zero_copy_only=False))] = np.nan
    return filled


def booleans(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """1.0 / 0.0, NaN where null or not a recognised boolean word or number."""
    array = _combined(array)
    if pa.types.is_boolean(array.type):
        return _nan_nulls(pc.cast(array, pa.int8()))
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        values = numbers(array)
        values[(values != 0) & (values != 1)] = np.nan
        return values
    text = pc.utf8_lower(_strings(array))
    out = np.full(len(text), np.nan)
    out[_np_bool(pc.is_in(text, value_set=pa.array(TRUE_WORDS)))] = 1.0
    out[_np_bool(pc.is_in(text, value_set=pa.array(FALSE_WORDS)))] = 0.0
    return out


def category_codes(array: pa.ChunkedArray | pa.Array, categories: list[str]) -> np.ndarray:
    """Index of each value in the declared ``categories`` (exact match after trimming spaces),
    -1 for null or undeclared values."""
    array = _combined(array)
    if pa.types.is_floating(array.type):
        # 1.0 in a float column is the category "1" when the schema declares "1".
        values = numbers(array)
        as_text = [None if np.isnan(v) else (str(int(v)) if float(v).is_integer() else repr(float(v))) for v in values]
        text = pa.array(as_text, pa.string())
    else:
        text = _strings(array)
    codes = pc.index_in(text, value_set=pa.array(categories, pa.string()))
    return pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _np_bool(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


# --- the feature spec -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """How one column becomes model inputs ``output_indices`` (public, from the schema)."""

    column: str
    kind: str  # "numeric" | "datetime" | "boolean" | "categorical"
    schema_type: str
    output_indices: tuple[int, ...]
    low: float | None = None  # numeric / datetime (epoch seconds)
    high: float | None = None
    categories: tuple[str, ...] | None = None
    declared_min: Any = None  # as declared (numbers or ISO strings), for the card
    declared_max: Any = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "column": self.column,
            "kind": self.kind,
            "schema_type": self.schema_type,
            "output_indices": list(self.output_indices),
        }
        if self.kind in ("numeric", "datetime"):
            out["min"], out["max"] = self.declared_min, self.declared_max
            if self.kind == "datetime":
                out["min_epoch_seconds"], out["max_epoch_seconds"] = self.low, self.high
                out["transform"] = (
                    "seconds since 1970-01-01T00:00:00Z (naive times are UTC), clipped to [min, max], "
                    "then (x - min) / (max - min); 0 when min == max; null or unparseable -> 0"
                )
            else:
                out["transform"] = (
                    "clip to [min, max], then (x - min) / (max - min); 0 when min == max; null or unparseable -> 0"
                )
        elif self.kind == "boolean":
            out["transform"] = (
                f"{'/'.join(TRUE_WORDS[:4])} (case-insensitive) -> 1, {'/'.join(FALSE_WORDS[:4])} -> 0; "
                "null or other -> 0"
            )
        else:
            out["categories"] = list(self.categories or ())
            out["transform"] = "one-hot over the declared categories in this order; null or undeclared -> all zeros"
        return out


def feature_specs(schema: dict[str, Any], features: list[str]) -> list[FeatureSpec]:
    """The input layout for ``features`` (in order) from the declared schema."""
    columns = schema_columns(schema)
    specs, index = [], 0
    for name in features:
        col = columns[name]
        kind = col["type"]
        if kind in ("integer", "float", "datetime"):
            low, high = column_bounds_seconds(col)  # type: ignore[misc]
            specs.append(
                FeatureSpec(
                    name,
                    "datetime" if kind == "datetime" else "numeric",
                    kind,
                    (index,),
                    low=low,
                    high=high,
                    declared_min=col.get("min"),
                    declared_max=col.get("max"),
                )
            )
            index += 1
        elif kind == "boolean":
            specs.append(FeatureSpec(name, "boolean", kind, (index,)))
            index += 1
        else:
            cats = tuple(col["categories"])
            specs.append(
                FeatureSpec(name, "categorical", kind, tuple(range(index, index + len(cats))), categories=cats)
            )
            index += len(cats)
    return specs


def input_width(specs: list[FeatureSpec]) -> int:
    return sum(len(s.output_indices) for s in specs)


def scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to [low, high] and map to [0, 1] (0 when low == high); NaN stays NaN."""
    if high <= low:
        return np.where(np.isnan(values), np.nan, 0.0)
    return (np.clip(values, low, high) - low) / (high - low)


def features_matrix(
    table: dict[str, pa.ChunkedArray], specs: list[FeatureSpec], rows: np.ndarray | None = None
) -> np.ndarray:
    """The float32 input matrix [rows, width] (``rows`` selects rows; None = all)."""
    n = len(next(iter(table.values()))) if rows is None else len(rows)
    out = np.zeros((n, input_width(specs)), dtype=np.float32)
    for spec in specs:
        col = table[spec.column]
        if spec.kind == "categorical":
            codes = category_codes(col, list(spec.categories or ()))
            if rows is not None:
                codes = codes[rows]
            hit = codes >= 0
            out[np.nonzero(hit)[0], spec.output_indices[0] + codes[hit]] = 1.0
            continue
        if spec.kind == "boolean":
            values = booleans(col)
        elif spec.kind == "datetime":
            values = scale(datetimes(col), spec.low, spec.high)  # type: ignore[arg-type]
        else:
            values = scale(numbers(col), spec.low, spec.high)  # type: ignore[arg-type]
        if rows is not None:
            values = values[rows]
        out[:, spec.output_indices[0]] = np.nan_to_num(values, nan=0.0)
    return out


@dataclass(frozen=True)
class TargetSpec:
    """The target's encoding: class labels for classifiers, declared bounds for regression, and
    the public default a row with no usable target takes (``default``: a class index, or a value
    scaled to [0, 1]). The default comes from the schema only: the column's declared ``default``
    when it is a declared class / a number, else the first class / the middle of the range."""

    column: str
    kind: str  # "classifier" | "regressor"
    schema_type: str
    classes: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 1.0
    default: float = 0.0

    def describe(self) -> dict[str, Any]:
        if self.kind == "classifier":
            return {
                "column": self.column,
                "schema_type": self.schema_type,
                "classes": list(self.classes),
                "default": self.classes[int(self.default)],
                "encoding": "class index in this order; a row whose target is null or undeclared counts as the "
                "public default class",
            }
        return {
            "column": self.column,
            "schema_type": self.schema_type,
            "min": self.low,
            "max": self.high,
            "default": self.low + self.default * (self.high - self.low),
            "encoding": "trained on clip(y, min, max) scaled to [0, 1]; the ONNX output is clipped to [0, 1] "
            "and unscaled (min + p * (max - min)); a row whose target is null or unparseable counts as the "
            "public default value",
        }


def _class_default(col: dict[str, Any], classes: tuple[str, ...]) -> int:
    declared = col.get("default")
    if isinstance(declared, bool):
        declared = "true" if declared else "false"
    elif isinstance(declared, int | float) and float(declared).is_integer():
        declared = str(int(declared))
    return classes.index(declared) if isinstance(declared, str) and declared in classes else 0


def target_spec(schema: dict[str, Any], target: str, kind: str) -> TargetSpec:
    col = schema_columns(schema)[target]
    if kind == "classifier":
        if col["type"] == "boolean":
            classes: tuple[str, ...] = ("false", "true")
        elif col["type"] == "integer":
            classes = tuple(str(i) for i in range(int(col["min"]), int(col["max"]) + 1))
        else:
            classes = tuple(col["categories"])
        return TargetSpec(target, kind, col["type"], classes=classes, default=float(_class_default(col, classes)))
    low, high = column_bounds_seconds(col)  # type: ignore[misc]
    declared = col.get("default")
    usable = isinstance(declared, int | float) and not isinstance(declared, bool) and np.isfinite(declared)
    default = float(scale(np.array([float(declared)]), low, high)[0]) if usable else 0.5  # type: ignore[arg-type]
    return TargetSpec(target, kind, col["type"], low=low, high=high, default=default)


def _target_encoded(table: dict[str, pa.ChunkedArray], spec: TargetSpec) -> np.ndarray:
    """Class indices (-1: no usable value) or scaled values (NaN: none), one per row."""
    col = table[spec.column]
    if spec.kind == "classifier":
        if spec.schema_type == "boolean":
            raw = booleans(col)
            return np.where(np.isnan(raw), -1, raw).astype(np.int64)
        return category_codes(col, list(spec.classes))
    return scale(numbers(col), spec.low, spec.high)


def target_coerced(table: dict[str, pa.ChunkedArray], spec: TargetSpec) -> np.ndarray:
    """Encoded targets for every row, a row with no usable target taking the public default:
    class indices (int64) for a classifier, scaled values in [0, 1] (float32) for a regressor.
    No row is dropped, so one malformed row changes nothing but its own contribution."""
    encoded = _target_encoded(table, spec)
    if spec.kind == "classifier":
        return np.where(encoded >= 0, encoded, int(spec.default)).astype(np.int64)
    return np.where(np.isnan(encoded), spec.default, encoded).astype(np.float32)


def target_values(table: dict[str, pa.ChunkedArray], spec: TargetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(kept row indices, encoded targets for those rows) for a *public* table (the buyer's own
    evaluation file): rows with no usable target are dropped there, since nothing is private."""
    encoded = _target_encoded(table, spec)
    kept = np.nonzero(encoded >= 0)[0] if spec.kind == "classifier" else np.nonzero(~np.isnan(encoded))[0]
    values = encoded[kept]
    return kept, values if spec.kind == "classifier" else values.astype(np.float32)
