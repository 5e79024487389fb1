"""The owner's report of cells that do not fit the schema (``Dataset.schema_report``), in words.

Owner and staff only: the counts are exact statistics of the private file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketplace.models import Dataset
from marketplace.services.schema import ISSUES

DEFAULTED = "will be replaced by the public default at compute time"
CLAMPED = "will be clamped"

# issue code -> (what the cells are, what a job does with them); {min}/{max}/{max_length} from the column.
_ISSUE_TEXT: dict[str, tuple[str, str]] = {
    "bad_utf8": ("not valid UTF-8 text", f"read as missing and {DEFAULTED}"),
    "missing": ("missing in a column declared not nullable", DEFAULTED),
    "not_number": ("not a number", DEFAULTED),
    "not_datetime": ("not a date or time", DEFAULTED),
    "not_boolean": ("not a boolean (true/false, 1/0, yes/no)", DEFAULTED),
    "below_min": ("below min {min}", CLAMPED),
    "above_max": ("above max {max}", CLAMPED),
    "undeclared_category": ("not a declared category", "will be encoded as no category (all zeros)"),
    "too_long": ("longer than max length {max_length}", "are kept as they are"),
}
_DATETIME_TEXT = {"below_min": "before min {min}", "above_max": "after max {max}"}


@dataclass(frozen=True)
class SchemaReport:
    """``checked``: a full-file check has run; ``against``: "declared" or "proposed";
    ``stale``: the schema was declared again since (a new check is on its way)."""

    checked: bool
    against: str = ""
    stale: bool = False
    checked_at: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.checked and not self.lines


def _issue_text(code: str, count: int, column: dict[str, Any]) -> str:
    what, consequence = _ISSUE_TEXT.get(code, (code.replace("_", " "), ""))
    if column.get("type") == "datetime" and code in _DATETIME_TEXT:
        what = _DATETIME_TEXT[code]
    what = what.format(min=column.get("min"), max=column.get("max"), max_length=column.get("max_length"))
    noun = "cell" if count == 1 else "cells"
    return f"{count:,} {noun} {what}, {consequence}" if consequence else f"{count:,} {noun} {what}"


def schema_report_lines(*, report: dict[str, Any], schema: dict[str, Any] | None) -> list[str]:
    """One line per column with problems: "column age: 3 cells not a number, will be replaced by
    the public default at compute time; 12 cells above max 100, will be clamped"."""
    columns = {c.get("name"): c for c in (schema or {}).get("columns", []) if isinstance(c, dict)}
    lines = []
    for entry in report.get("columns", []):
        name = entry.get("name", "")
        column = columns.get(name, {})
        issues = entry.get("issues") or {}
        # In a fixed order: JSONB does not keep the keys' order.
        ordered = sorted(issues.items(), key=lambda item: ISSUES.index(item[0]) if item[0] in ISSUES else len(ISSUES))
        parts = [_issue_text(code, int(count), column) for code, count in ordered if count]
        if parts:
            lines.append(f"column {name}: " + "; ".join(parts))
    return lines


def dataset_schema_report(*, dataset: Dataset) -> SchemaReport:
    """The dataset's report in words. Call only for the owner or staff."""
    report = dataset.schema_report or {}
    if not report:
        return SchemaReport(checked=False)
    against = report.get("against", "")
    schema = dataset.declared_schema if against == "declared" else dataset.proposed_schema
    confirmed = dataset.schema_confirmed_at.isoformat() if dataset.schema_confirmed_at else None
    stale = bool(dataset.declared_schema) and (against != "declared" or report.get("schema_confirmed_at") != confirmed)
    return SchemaReport(
        checked=True,
        against=against,
        stale=stale,
        checked_at=report.get("checked_at", ""),
        lines=schema_report_lines(report=report, schema=schema),
    )
