"""Mock data synthesised from the declared schema alone. It never reads the private file:
the only inputs are the public schema, a row count and a seed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import numpy as np

from common.errors import Conflict, InvalidInput

MOCK_DEFAULT_ROWS = 100
WORDS = (
    "alpha",
    "bravo",
    "delta",
    "echo",
    "lima",
    "nova",
    "orbit",
    "pixel",
    "quartz",
    "river",
    "sierra",
    "tango",
    "vector",
    "willow",
    "zephyr",
)


def mock_rows_generate(
    *, schema: dict[str, Any] | None, rows: int = MOCK_DEFAULT_ROWS, seed: int = 0, max_rows: int = 10_000
) -> tuple[list[str], list[list[Any]]]:
    if not schema or not schema.get("columns"):
        raise Conflict("This dataset has no declared schema yet, so there is no mock data.", code="schema_not_declared")
    if not 1 <= rows <= max_rows:
        raise InvalidInput(f"rows must be between 1 and {max_rows}.", code="invalid_rows")
    if not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"seed must be a whole number from 0 to {MAX_SEED}.", code="invalid_seed")
    rng = np.random.default_rng(seed)
    header = [c["name"] for c in schema["columns"]]
    columns: list[list[Any]] = []
    for col in schema["columns"]:
        kind = col["type"]
        if kind == "integer":
            values: list[Any] = rng.integers(int(col["min"]), int(col["max"]), size=rows, endpoint=True).tolist()
        elif kind == "float":
            lo, hi = float(col["min"]), float(col["max"])
            values = [float(f"{v:.6g}") for v in rng.uniform(lo, hi, size=rows)]
        elif kind == "boolean":
            values = ["true" if v else "false" for v in rng.random(rows) < 0.5]
        elif kind == "categorical":
            values = rng.choice(np.array(col["categories"], dtype=object), size=rows).tolist()
        elif kind == "datetime":
            lo_ts = dt.datetime.fromisoformat(col["min"]).replace(tzinfo=dt.UTC).timestamp()
            hi_ts = dt.datetime.fromisoformat(col["max"]).replace(tzinfo=dt.UTC).timestamp()
            stamps = rng.uniform(lo_ts, hi_ts, size=rows)
            values = [dt.datetime.fromtimestamp(int(s), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") for s in stamps]
        else:
            max_length = int(col.get("max_length", 255))
            picks = rng.integers(0, len(WORDS), size=(rows, 3))
            values = [" ".join(WORDS[i] for i in row)[:max_length] for row in picks]
        if col.get("nullable"):
            blanks = rng.random(rows) < 0.05
            values = ["" if blank else v for v, blank in zip(values, blanks, strict=True)]
        columns.append(values)
    return header, [list(row) for row in zip(*columns, strict=True)]


MOCK_SOURCES = ("auto", "synthetic", "uploaded")
MAX_SEED = 2**63 - 1
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def spreadsheet_safe(cell: Any) -> Any:
    """A cell that a spreadsheet would run as a formula (starting with = + - @, a tab or a CR, and
    not a plain number) gets a leading apostrophe, as OWASP advises for CSV downloads."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(cell):
        return "'" + cell
    return cell


def _csv_escaped(body: bytes) -> bytes:
    text = body.decode("utf-8", errors="replace")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(text)):
        writer.writerow([spreadsheet_safe(c) for c in row])
    return out.getvalue().encode()


def dataset_mock_csv(
    *, dataset, source: str = "auto", rows: int = MOCK_DEFAULT_ROWS, seed: int | None = None
) -> tuple[bytes, str]:
    """The mock CSV a buyer downloads and whether it is "synthetic" or "uploaded" by the provider.

    ``auto`` serves the provider's mock file when there is one. Synthetic rows default to the
    dataset's id as seed, so the page preview and the download agree."""
    from django.conf import settings

    from common.errors import NotFound
    from marketplace.services.datasets import csv_bytes
    from marketplace.services.storage import dataset_storage

    if source not in MOCK_SOURCES:
        raise InvalidInput("source must be auto, synthetic or uploaded.", code="invalid_source")
    if source == "uploaded" or (source == "auto" and dataset.mock_storage_name):
        if not dataset.mock_storage_name:
            raise NotFound("The provider has not uploaded a mock file.", code="no_uploaded_mock")
        with dataset_storage().open(dataset.mock_storage_name, "rb") as fh:
            return _csv_escaped(fh.read()), "uploaded"
    header, data = mock_rows_generate(
        schema=dataset.declared_schema,
        rows=rows,
        seed=dataset.pk if seed is None else seed,
        max_rows=settings.DATASET_MOCK_MAX_ROWS,
    )
    return csv_bytes(header, ([spreadsheet_safe(c) for c in row] for row in data)), "synthetic"


def dataset_mock_preview(*, dataset, rows: int = 10) -> tuple[list[str], list[list[str]], str] | None:
    """The first ``rows`` rows of what the mock download serves, for the dataset page."""
    import csv
    import io

    if not dataset.declared_schema:
        return None
    body, kind = dataset_mock_csv(dataset=dataset)
    lines = list(csv.reader(io.StringIO(body[: 256 * 1024].decode("utf-8", errors="replace"))))
    if not lines:
        return None
    return lines[0], lines[1 : rows + 1], kind
