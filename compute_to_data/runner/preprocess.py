"""Reading the private table and turning it into model inputs, from the declared schema only.

Every transformation is fixed by the dataset's public declared schema (bounds, categories), never
by statistics of the private rows, so it costs no privacy and the buyer can reproduce it exactly
from the model card:

* integer / float / datetime: clip to the declared [min, max], scale to [0, 1] (min == max -> 0);
  datetimes are seconds since the Unix epoch (naive = UTC) before scaling;
* boolean: true/1/yes/t/y -> 1, false/0/no/f/n -> 0;
* categorical: one-hot over the declared categories in declared order (unknown -> all zeros);
* null or unparseable -> 0 in every output of that column.

Parsing is tolerant (a bad cell becomes null) and never lets a library's exception message out,
because those quote cell values.
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


def _csv_read(path: Path, wanted: list[str]) -> pa.Table:
    import pyarrow.csv as pacsv

    # First the header alone (one block), to name a missing column ourselves.
    with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)) as reader:
        names = reader.schema.names
    _check_present(names, wanted)
    convert = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types={name: pa.string() for name in wanted},
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return pacsv.read_csv(path, convert_options=convert)


def _parquet_read(path: Path, wanted: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    _check_present(pq.read_schema(path).names, wanted)
    return pq.read_table(path, columns=wanted)


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


def _strings(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
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


def datetimes(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Seconds since the Unix epoch as float64 (naive values are UTC), NaN where missing."""
    from .params import datetime_to_seconds

    array = _combined(array)
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        micros = pc.cast(pc.cast(array, pa.timestamp("us", tz=getattr(array.type, "tz", None))), pa.int64())
        return _nan_nulls(micros).astype(np.float64) / 1e6
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        return numbers(array)  # already epoch seconds
    text = _strings(array)
    try:
        micros = pc.cast(pc.cast(text, pa.timestamp("us")), pa.int64())
        return _nan_nulls(micros).astype(np.float64) / 1e6
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Mixed or zoned formats: parse each distinct string once.
    encoded = pc.dictionary_encode(text)
    parsed = np.full(len(encoded.dictionary), np.nan)
    for i, value in enumerate(encoded.dictionary.to_pylist()):
        try:
            parsed[i] = datetime_to_seconds(value)
        except (ValueError, TypeError, OverflowError):
            pass
    indices = _nan_nulls(encoded.indices)
    out = np.full(len(indices), np.nan)
    valid = ~np.isnan(indices)
    out[valid] = parsed[indices[valid].astype(np.int64)]
    return out


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
    """The target's encoding: class labels for classifiers, declared bounds for regression."""

    column: str
    kind: str  # "classifier" | "regressor"
    schema_type: str
    classes: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 1.0

    def describe(self) -> dict[str, Any]:
        if self.kind == "classifier":
            return {
                "column": self.column,
                "schema_type": self.schema_type,
                "classes": list(self.classes),
                "encoding": "class index in this order; rows whose target is null or undeclared are not used",
            }
        return {
            "column": self.column,
            "schema_type": self.schema_type,
            "min": self.low,
            "max": self.high,
            "encoding": "trained on clip(y, min, max) scaled to [0, 1]; the ONNX output is clipped to [0, 1] "
            "and unscaled (min + p * (max - min)); rows whose target is null are not used",
        }


def target_spec(schema: dict[str, Any], target: str, kind: str) -> TargetSpec:
    col = schema_columns(schema)[target]
    if kind == "classifier":
        if col["type"] == "boolean":
            classes: tuple[str, ...] = ("false", "true")
        elif col["type"] == "integer":
            classes = tuple(str(i) for i in range(int(col["min"]), int(col["max"]) + 1))
        else:
            classes = tuple(col["categories"])
        return TargetSpec(target, kind, col["type"], classes=classes)
    low, high = column_bounds_seconds(col)  # type: ignore[misc]
    return TargetSpec(target, kind, col["type"], low=low, high=high)


def target_values(table: dict[str, pa.ChunkedArray], spec: TargetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(kept row indices, encoded targets for those rows): class indices (int64) for a classifier,
    scaled values in [0, 1] (float32) for a regressor. Rows with no usable target are dropped;
    their number is private and is never reported."""
    col = table[spec.column]
    if spec.kind == "classifier":
        if spec.schema_type == "boolean":
            raw = booleans(col)
            codes = np.where(np.isnan(raw), -1, raw).astype(np.int64)
        else:
            codes = category_codes(col, list(spec.classes))
        kept = np.nonzero(codes >= 0)[0]
        return kept, codes[kept]
    values = scale(numbers(col), spec.low, spec.high)
    kept = np.nonzero(~np.isnan(values))[0]
    return kept, values[kept].astype(np.float32)
