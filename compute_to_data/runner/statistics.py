"""DP summary statistics: per column counts, sums, means, histograms and quantiles.

Every query is a Gaussian mechanism with noise ``sigma * sensitivity`` (L2, add/remove one row):

* count of non-null values: sensitivity 1;
* centred sum Σ (clip(x, min, max) - m) with m = (min + max) / 2: sensitivity (max - min) / 2.
  The released sum is that plus m · count and the mean is m + centred sum / count (both
  post-processing); centring keeps the mean's error proportional to the column's range rather than
  to its magnitude (a year column would otherwise carry noise ~2000 / count);
* histogram over public bins (declared categories; ``bins`` equal bins over the declared bounds;
  false/true): one row moves one bin by 1, sensitivity 1;
* quantiles: read off a released 64-bin DP histogram over the declared bounds (post-processing).

All queries share one sigma, calibrated with Opacus (each query is one step at sample rate 1, so
K queries are the history ``[(sigma, 1.0, K)]``) so the accountant's epsilon is at most the
requested one. Nulls and unparseable cells are not counted; no exact count is ever released.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from . import accounting, preprocess
from .errors import InvalidData
from .events import Events
from .params import column_bounds_seconds, schema_columns

QUANTILE_BINS = 64

APPLICABLE = {
    "numeric": ("count", "sum", "mean", "histogram", "quantiles"),
    "datetime": ("count", "mean", "histogram", "quantiles"),
    "boolean": ("count", "sum", "mean", "histogram"),
    "categorical": ("count", "histogram"),
}


@dataclass
class _Query:
    column: str
    name: str  # "count" | "centred_sum" | "histogram" | "fine_histogram"
    sensitivity: float
    exact: np.ndarray
    noisy: np.ndarray | None = None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _kind(schema_type: str) -> str:
    return {"integer": "numeric", "float": "numeric"}.get(schema_type, schema_type)


def _values(array: Any, kind: str) -> np.ndarray:
    if kind == "numeric":
        return preprocess.numbers(array)
    if kind == "datetime":
        return preprocess.datetimes(array)
    return preprocess.booleans(array)


def _quantiles_from(counts: np.ndarray, edges: np.ndarray, levels: list[float]) -> list[float | None]:
    """Quantiles of a (noisy, clamped) histogram by linear interpolation inside the bin."""
    counts = np.clip(counts, 0.0, None)
    total = counts.sum()
    if total <= 0:
        return [None for _ in levels]
    cumulative = np.cumsum(counts)
    out: list[float | None] = []
    for level in levels:
        goal = level * total
        i = int(np.searchsorted(cumulative, goal, side="left"))
        i = min(i, len(counts) - 1)
        before = cumulative[i - 1] if i > 0 else 0.0
        inside = (goal - before) / counts[i] if counts[i] > 0 else 0.5
        out.append(float(edges[i] + min(max(inside, 0.0), 1.0) * (edges[i + 1] - edges[i])))
    return out


def statistics_run(
    *,
    parameters: dict[str, Any],
    schema: dict[str, Any],
    data_file: str,
    data_format: str,
    events: Events,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Compute and release the DP statistics; returns the statistics document (JSON-able) with
    ``epsilon_spent``, ``noise_multiplier`` and ``queries`` for the manifest."""
    from .train import gaussian

    events.progress("loading", epoch=0, epochs=1, step=0, steps=0, epsilon=0.0, force=True)
    columns = schema_columns(schema)
    wanted = parameters["statistics"]
    table, rows = preprocess.table_read(data_file, data_format, parameters["columns"])
    if rows == 0:
        raise InvalidData("The data file has no rows.")
    events.log("Data loaded.")

    plans: list[dict[str, Any]] = []
    queries: list[_Query] = []
    for name in parameters["columns"]:
        col = columns[name]
        kind = _kind(col["type"])
        stats = [s for s in wanted if s in APPLICABLE[kind]]
        plan: dict[str, Any] = {"name": name, "type": col["type"], "kind": kind, "stats": stats, "queries": {}}
        plans.append(plan)
        if not stats:
            continue

        def add(
            query_name: str, sensitivity: float, exact: np.ndarray, plan: dict[str, Any] = plan, name: str = name
        ) -> None:
            queries.append(_Query(name, query_name, sensitivity, np.asarray(exact, dtype=np.float64)))
            plan["queries"][query_name] = queries[-1]

        if kind == "categorical":
            cats = list(col["categories"])
            codes = preprocess.category_codes(table[name], cats)
            known = codes[codes >= 0]
            if "count" in stats:
                add("count", 1.0, np.array([len(known)]))
            if "histogram" in stats:
                add("histogram", 1.0, np.bincount(known, minlength=len(cats)))
            plan["categories"] = cats
            continue

        values = _values(table[name], kind)
        values = values[~np.isnan(values)]
        if kind == "boolean":
            low, high = 0.0, 1.0
        else:
            low, high = column_bounds_seconds(col)  # type: ignore[misc]
        plan["low"], plan["high"] = low, high
        plan["declared"] = (col.get("min"), col.get("max"))
        clipped = np.clip(values, low, high)
        if {"count", "sum", "mean"} & set(stats):
            # Sum and mean are rebuilt from the count, so they need it released too.
            add("count", 1.0, np.array([len(clipped)]))
        if "sum" in stats or "mean" in stats:
            mid = (low + high) / 2
            add("centred_sum", (high - low) / 2, np.array([np.sum(clipped - mid)]))
        if "histogram" in stats:
            if kind == "boolean":
                edges = np.array([0.0, 0.5, 1.0])
            else:
                edges = np.linspace(low, high, parameters["bins"] + 1) if high > low else np.array([low, high])
            plan["edges"] = edges
            add("histogram", 1.0, _histogram(clipped, edges))
        if "quantiles" in stats:
            fine = np.linspace(low, high, QUANTILE_BINS + 1) if high > low else np.array([low, high])
            plan["fine_edges"] = fine
            add("fine_histogram", 1.0, _histogram(clipped, fine))
    del table

    # A query whose sensitivity is 0 (a column with min == max) is exact public knowledge given the
    # count; it needs no noise and no budget.
    noisy_queries = [q for q in queries if q.sensitivity > 0]
    k = len(noisy_queries)
    if k:
        sigma = accounting.opacus_noise_multiplier(
            epsilon=parameters["epsilon"],
            delta=parameters["delta"],
            sample_rate=1.0,
            steps=k,
            mechanism=parameters["accountant"],
        )
    else:
        sigma = 0.0
    accountant = accounting.create(parameters["accountant"])
    for i, query in enumerate(queries):
        if query.sensitivity > 0:
            query.noisy = query.exact + gaussian(query.exact.size, sigma * query.sensitivity, generator).numpy()
            accountant.step(noise_multiplier=sigma, sample_rate=1.0)
        else:
            query.noisy = query.exact.copy()
        events.progress("training", epoch=1, epochs=1, step=i + 1, steps=len(queries), epsilon=0.0)
    epsilon_spent = accounting.accountant_epsilon(accountant, parameters["delta"])
    if epsilon_spent > parameters["epsilon"] + 1e-9:
        raise RuntimeError("accounted epsilon above the target")
    events.progress("evaluating", epoch=1, epochs=1, step=k, steps=k, epsilon=epsilon_spent, force=True)

    document = {
        "algorithm": "dp-statistics",
        "epsilon_spent": epsilon_spent,
        "epsilon": parameters["epsilon"],
        "delta": parameters["delta"],
        "accountant": parameters["accountant"],
        "noise_multiplier": sigma,
        "queries": k,
        "columns": [_column_release(p, parameters, sigma) for p in plans],
        "notes": [
            "Values marked 'dp' are noisy (Gaussian mechanism); 'noise_std' is the standard deviation of the noise "
            "added to the underlying sum or count (public: it depends only on the parameters and the declared bounds).",
            "Values marked 'public' come from the declared schema (bounds, categories, bin edges).",
            "Counts are rounded and clamped at 0; means and quantiles are clamped to the declared bounds.",
            "Rows whose value is null or cannot be parsed are not counted.",
        ],
    }
    return document


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if len(edges) == 2 and edges[0] == edges[1]:
        return np.array([len(values)], dtype=np.float64)
    counts, _ = np.histogram(values, bins=edges)
    return counts.astype(np.float64)


def _count_value(noisy: float) -> int:
    return max(int(round(noisy)), 0)


def _column_release(plan: dict[str, Any], parameters: dict[str, Any], sigma: float) -> dict[str, Any]:
    kind, stats, queries = plan["kind"], plan["stats"], plan["queries"]
    out: dict[str, Any] = {"name": plan["name"], "type": plan["type"]}
    if not stats:
        out["skipped"] = "none of the requested statistics applies to this column type"
        return out
    is_time = kind == "datetime"

    def shown(x: float) -> Any:
        return _iso(x) if is_time else x

    if "low" in plan and kind != "boolean":
        declared_min, declared_max = plan["declared"]
        out["bounds"] = {"min": declared_min, "max": declared_max, "source": "public"}
    count_q = queries.get("count")
    noisy_count = float(count_q.noisy[0]) if count_q is not None else 0.0
    if count_q is not None and "count" in stats:
        out["count"] = {"value": _count_value(noisy_count), "source": "dp", "noise_std": sigma * count_q.sensitivity}
    if "centred_sum" in queries:
        low, high = plan["low"], plan["high"]
        mid = (low + high) / 2
        centred = float(queries["centred_sum"].noisy[0])
        sum_std = sigma * queries["centred_sum"].sensitivity
        if "sum" in stats:
            out["sum"] = {
                "value": centred + mid * max(noisy_count, 0.0),
                "source": "dp",
                "noise_std": math.hypot(sum_std, abs(mid) * sigma),
            }
        if "mean" in stats:
            mean = mid + centred / max(noisy_count, 1.0)
            mean = min(max(mean, low), high)
            out["mean"] = {"value": shown(mean), "source": "dp"}
    if "histogram" in queries:
        counts = [_count_value(v) for v in queries["histogram"].noisy]
        if kind == "categorical":
            out["histogram"] = {
                "categories": plan["categories"],
                "counts": counts,
                "source": "dp",
                "bins_source": "public",
                "noise_std": sigma,
            }
        elif kind == "boolean":
            out["histogram"] = {
                "categories": ["false", "true"],
                "counts": counts,
                "source": "dp",
                "bins_source": "public",
                "noise_std": sigma,
            }
        else:
            out["histogram"] = {
                "edges": [shown(float(e)) for e in plan["edges"]],
                "counts": counts,
                "source": "dp",
                "bins_source": "public",
                "noise_std": sigma,
            }
    if "fine_histogram" in queries:
        levels = parameters["quantiles"]
        values = _quantiles_from(queries["fine_histogram"].noisy, plan["fine_edges"], levels)
        out["quantiles"] = {
            "levels": levels,
            "values": [None if v is None else shown(v) for v in values],
            "source": "dp",
            "method": f"interpolated from a DP histogram of {QUANTILE_BINS} equal bins over the declared bounds",
        }
    return out
