"""DP summary statistics: per column counts, sums, means, histograms and quantiles, released
through OpenDP's exact samplers and accounted in zero-concentrated DP (zCDP) with OpenDP's own
privacy maps.

Each query is an OpenDP measurement from the column's vector (add/remove one row changes each
column's vector by one element: ``symmetric_distance``, d_in = 1):

* count of non-null values: ``then_count`` then the discrete Gaussian (integers, exact sampler);
* sum: each value clipped to the declared [min, max] and put on a public integer grid of ``GRID``
  steps centred on the midpoint (boolean columns: exactly -1 / +1), then OpenDP's clamped integer
  sum and the discrete Gaussian. The released sum is ``step * noisy grid sum + mid * noisy count``
  and the mean ``mid + step * noisy grid sum / noisy count`` (post-processing); centring keeps the
  mean's error proportional to the column's range rather than its magnitude;
* histogram over public bins (declared categories; ``bins`` equal bins over the declared bounds;
  false/true): ``then_count_by_categories`` (L2 sensitivity 1) then the discrete Gaussian;
* each quantile level: OpenDP's exponential-mechanism quantile (``make_private_quantile``: scores
  of ``QUANTILE_CANDIDATES`` public candidates evenly spread over the declared bounds, selected by
  report-noisy-max with Gumbel noise).

Budget: the requested (epsilon, delta) is turned into a total rho, the largest whose conversion
by OpenDP (``make_zCDP_to_approxDP``, the tight Canonne-Kamath-Steinke bound, never looser than
``rho + 2 sqrt(rho ln(1/delta))``) is at most epsilon at the job's delta. It is split equally across
the K queries; each query's scale is chosen so that its OpenDP privacy map at d_in = 1 is at most
its share, and the sum of the maps is checked against the total before anything is released. The
``accountant`` parameter (rdp/prv) is accepted for compatibility but does not apply here.

Nulls and unparseable cells are not counted (filtering them changes one row's contribution only);
no exact count is ever released. The float noise of the old Gaussian mechanism, open to attacks on
its low bits, is gone: every noisy integer comes from OpenDP's exact discrete samplers, drawn from
OpenDP's own CSPRNG.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from . import preprocess
from .events import Events
from .params import column_bounds_seconds, schema_columns

QUANTILE_CANDIDATES = 257
# Public integer grid for sums: clip(x) - mid is rounded to a multiple of (max - min) / GRID.
GRID = 1 << 24
RHO_SEARCH_STEPS = 80

APPLICABLE = {
    "numeric": ("count", "sum", "mean", "histogram", "quantiles"),
    "datetime": ("count", "mean", "histogram", "quantiles"),
    "boolean": ("count", "sum", "mean", "histogram"),
    "categorical": ("count", "histogram"),
}


@functools.cache
def _dp() -> Any:
    import opendp.prelude as dp

    # contrib: OpenDP's mechanisms that are not yet formally vetted (all of the ones used here).
    # "floating-point" is not enabled: every noisy number is an integer from the discrete
    # samplers, and the quantile's float candidates are only selected, never perturbed.
    dp.enable_features("contrib")
    return dp


# --- zCDP <-> (epsilon, delta) ---------------------------------------------------------------------


def zcdp_epsilon(rho: float, delta: float) -> float:
    """OpenDP's (epsilon at ``delta``) for a rho-zCDP release (``make_zCDP_to_approxDP``)."""
    if rho <= 0:
        return 0.0
    dp = _dp()
    probe = dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=math.sqrt(1 / (2 * rho)))
    return float(dp.c.make_zCDP_to_approxDP(probe).map(1).epsilon(delta))


@functools.lru_cache(maxsize=64)
def rho_for(epsilon: float, delta: float) -> float:
    """The largest rho (to float bisection) whose OpenDP conversion is at most ``epsilon`` at
    ``delta``: spending it spends exactly the requested epsilon."""
    low, high = 0.0, float(epsilon)  # epsilon >= rho for every delta < 1
    for _ in range(RHO_SEARCH_STEPS):
        mid = (low + high) / 2
        if zcdp_epsilon(mid, delta) <= epsilon:
            low = mid
        else:
            high = mid
    return low


# --- the measurements ---------------------------------------------------------------------------


def count_measurement(scale: float) -> Any:
    """Count of an i64 vector plus discrete Gaussian noise of ``scale`` (std)."""
    dp = _dp()
    space = (dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance())
    return space >> dp.t.then_count(TO="i64") >> dp.m.then_gaussian(scale=scale)


def sum_measurement(scale: float, half_grid: int) -> Any:
    """Sum of an i64 vector clamped to ±half_grid plus discrete Gaussian noise."""
    dp = _dp()
    space = (dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance())
    return space >> dp.t.then_clamp((-half_grid, half_grid)) >> dp.t.then_sum() >> dp.m.then_gaussian(scale=scale)


def histogram_measurement(scale: float, bins: int) -> Any:
    """Counts of bin indices 0..bins-1 (others ignored) plus discrete Gaussian noise per bin."""
    dp = _dp()
    space = (dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance())
    counts = dp.t.then_count_by_categories(
        categories=list(range(bins)), null_category=False, MO=dp.L2Distance["i64"], TOA="i64"
    )
    return space >> counts >> dp.m.then_gaussian(scale=scale)


def quantile_measurement(scale: float, candidates: list[float], level: float) -> Any:
    """OpenDP's exponential-mechanism ``level``-quantile over ``candidates``."""
    dp = _dp()
    return dp.m.make_private_quantile(
        dp.vector_domain(dp.atom_domain(T=float, nan=False)),
        dp.symmetric_distance(),
        dp.zero_concentrated_divergence(),
        candidates=candidates,
        alpha=level,
        scale=scale,
    )


def _calibrated(build: Any, rho: float, unit_scale: float) -> tuple[Any, float]:
    """(measurement, scale) with the measurement's privacy map at d_in=1 at most ``rho``: the
    scale starts at ``unit_scale / sqrt(rho)`` (exact for these mechanisms, whose rho is
    proportional to 1/scale²) and grows until OpenDP's own map agrees."""
    scale = unit_scale / math.sqrt(rho)
    meas = build(scale)
    while meas.map(1) > rho:
        scale *= 1 + 1e-9
        meas = build(scale)
    return meas, scale


# --- planning (public: parameters and schema only) ------------------------------------------------


@dataclass
class QueryPlan:
    column: str
    name: str  # "count" | "centred_sum" | "histogram" | "quantile"
    rho: float
    scale: float  # noise std (count, sum in grid units, histogram) or the Gumbel scale (quantile)
    measurement: Any = field(repr=False, default=None)
    level: float | None = None


@dataclass
class ColumnPlan:
    name: str
    type: str
    kind: str
    stats: list[str]
    low: float | None = None
    high: float | None = None
    declared: tuple[Any, Any] = (None, None)
    categories: list[str] | None = None
    edges: np.ndarray | None = None
    candidates: list[float] | None = None
    grid: int = GRID
    queries: dict[str, QueryPlan] = field(default_factory=dict)
    quantiles: list[QueryPlan] = field(default_factory=list)

    @property
    def step(self) -> float:
        return (self.high - self.low) / self.grid if self.low is not None and self.high is not None else 0.0


@dataclass
class StatisticsPlan:
    rho: float
    rho_per_query: float
    columns: list[ColumnPlan]
    queries: list[QueryPlan]

    @property
    def noise_multiplier(self) -> float:
        """Noise std / L2 sensitivity of every Gaussian query (public)."""
        return 1 / math.sqrt(2 * self.rho_per_query) if self.rho_per_query > 0 else 0.0


def _kind(schema_type: str) -> str:
    return {"integer": "numeric", "float": "numeric"}.get(schema_type, schema_type)


def statistics_plan(parameters: dict[str, Any], schema: dict[str, Any]) -> StatisticsPlan:
    """Every query with its rho share, scale and OpenDP measurement, from public inputs only."""
    columns = schema_columns(schema)
    wanted = parameters["statistics"]
    plans: list[ColumnPlan] = []
    pending: list[tuple[ColumnPlan, str, float | None]] = []
    for name in parameters["columns"]:
        col = columns[name]
        kind = _kind(col["type"])
        plan = ColumnPlan(name, col["type"], kind, [s for s in wanted if s in APPLICABLE[kind]])
        plans.append(plan)
        if not plan.stats:
            continue
        if kind == "categorical":
            plan.categories = list(col["categories"])
            if "count" in plan.stats:
                pending.append((plan, "count", None))
            if "histogram" in plan.stats:
                pending.append((plan, "histogram", None))
            continue
        if kind == "boolean":
            plan.low, plan.high, plan.grid = 0.0, 1.0, 2
        else:
            plan.low, plan.high = column_bounds_seconds(col)  # type: ignore[misc]
            plan.declared = (col.get("min"), col.get("max"))
        low, high = plan.low, plan.high
        if {"count", "sum", "mean"} & set(plan.stats):
            # Sum and mean are rebuilt from the count, so they need it released too.
            pending.append((plan, "count", None))
        # A column with min == max has an exact public centred sum (0) and quantiles (min): no
        # noise and no budget for them.
        if ("sum" in plan.stats or "mean" in plan.stats) and high > low:
            pending.append((plan, "centred_sum", None))
        if "histogram" in plan.stats:
            if kind == "boolean":
                plan.edges = np.array([0.0, 0.5, 1.0])
            else:
                plan.edges = np.linspace(low, high, parameters["bins"] + 1) if high > low else np.array([low, high])
            pending.append((plan, "histogram", None))
        if "quantiles" in plan.stats and high > low:
            plan.candidates = [float(c) for c in np.linspace(low, high, QUANTILE_CANDIDATES)]
            pending.extend((plan, "quantile", level) for level in parameters["quantiles"])

    rho = rho_for(float(parameters["epsilon"]), float(parameters["delta"]))
    share = rho / len(pending) if pending else 0.0
    queries: list[QueryPlan] = []
    for plan, query_name, level in pending:
        if query_name == "count":
            meas, scale = _calibrated(count_measurement, share, math.sqrt(0.5))
        elif query_name == "centred_sum":
            half = plan.grid // 2
            meas, scale = _calibrated(lambda s, h=half: sum_measurement(s, h), share, half * math.sqrt(0.5))
        elif query_name == "histogram":
            bins = max(len(plan.categories) if plan.categories is not None else len(plan.edges) - 1, 1)  # type: ignore[arg-type]
            meas, scale = _calibrated(lambda s, b=bins: histogram_measurement(s, b), share, math.sqrt(0.5))
        else:

            def build(s: float, c: list[float] = plan.candidates, q: float = level) -> Any:  # type: ignore[assignment]
                return quantile_measurement(s, c, q)

            # rho = (sensitivity / scale)² / 8: the map at scale 1 gives the unit.
            meas, scale = _calibrated(build, share, math.sqrt(build(1.0).map(1)))
        query = QueryPlan(plan.name, query_name, float(meas.map(1)), scale, meas, level)
        queries.append(query)
        if query_name == "quantile":
            plan.quantiles.append(query)
        else:
            plan.queries[query_name] = query
    if sum(q.rho for q in queries) > rho * (1 + 1e-9):
        raise RuntimeError("composed rho above the budget")
    return StatisticsPlan(rho=rho, rho_per_query=share, columns=plans, queries=queries)


# --- running ----------------------------------------------------------------------------------


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _values(array: Any, kind: str) -> np.ndarray:
    if kind == "numeric":
        return preprocess.numbers(array)
    if kind == "datetime":
        return preprocess.datetimes(array)
    return preprocess.booleans(array)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram's bins (the last one closed) of values already clipped to the edges."""
    if len(edges) == 2 and edges[0] == edges[1]:
        return np.zeros(len(values), dtype=np.int64)
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2).astype(np.int64)


def statistics_run(
    *,
    parameters: dict[str, Any],
    schema: dict[str, Any],
    data_file: str,
    data_format: str,
    events: Events,
) -> dict[str, Any]:
    """Compute and release the DP statistics; returns the statistics document (JSON-able) with
    ``epsilon_spent`` (the requested epsilon: exactly what the budget reserved),
    ``epsilon_accounted`` (OpenDP's conversion of the composed rho, <= epsilon),
    ``noise_multiplier`` and ``queries`` for the manifest. An empty file releases noise alone."""
    events.progress("loading", epoch=0, epochs=1, step=0, steps=0, epsilon=0.0, force=True)
    plan = statistics_plan(parameters, schema)
    table, _ = preprocess.table_read(data_file, data_format, parameters["columns"])
    events.log("Data loaded.")

    k = len(plan.queries)
    noisy: dict[int, Any] = {}
    done = 0

    def release(query: QueryPlan, data: np.ndarray) -> Any:
        nonlocal done
        noisy[id(query)] = query.measurement(data)
        done += 1
        events.progress("training", epoch=1, epochs=1, step=done, steps=k, epsilon=0.0, force=True)
        return noisy[id(query)]

    for col in plan.columns:
        if not col.stats:
            continue
        if col.kind == "categorical":
            codes = preprocess.category_codes(table[col.name], list(col.categories or ()))
            known = codes[codes >= 0]
            for name in ("count", "histogram"):
                if name in col.queries:
                    release(col.queries[name], known)
            continue
        values = _values(table[col.name], col.kind)
        values = values[~np.isnan(values)]
        clipped = np.clip(values, col.low, col.high)
        if col.high > col.low:  # type: ignore[operator]
            grid = np.rint((clipped - col.low) / col.step).astype(np.int64) - col.grid // 2
        else:
            grid = np.zeros(len(clipped), dtype=np.int64)
        for name in ("count", "centred_sum"):
            if name in col.queries:
                release(col.queries[name], grid)
        if "histogram" in col.queries:
            release(col.queries["histogram"], _bin_index(clipped, col.edges))  # type: ignore[arg-type]
        for query in col.quantiles:
            release(query, clipped.astype(np.float64))
    del table

    epsilon_accounted = zcdp_epsilon(sum(q.rho for q in plan.queries), float(parameters["delta"]))
    if epsilon_accounted > parameters["epsilon"] + 1e-9:
        raise RuntimeError("accounted epsilon above the target")
    events.progress("evaluating", epoch=1, epochs=1, step=k, steps=k, epsilon=parameters["epsilon"], force=True)

    return {
        "algorithm": "dp-statistics",
        "epsilon_spent": parameters["epsilon"],
        "epsilon_accounted": epsilon_accounted,
        "epsilon": parameters["epsilon"],
        "delta": parameters["delta"],
        "accountant": "zcdp",
        "accountant_requested": parameters["accountant"],
        "privacy_accounting": "zCDP through OpenDP's privacy maps; (epsilon, delta) by OpenDP's zCDP-to-approxDP "
        "conversion",
        "rho": plan.rho,
        "rho_per_query": plan.rho_per_query,
        "noise_multiplier": plan.noise_multiplier,
        "queries": k,
        "columns": [_column_release(c, parameters, noisy) for c in plan.columns],
        "notes": [
            "Values marked 'dp' are noisy. Counts, sums and histograms carry discrete Gaussian noise (OpenDP's exact "
            "integer sampler); 'noise_std' is its standard deviation on the released count or sum (public: it depends "
            "only on the parameters and the declared bounds). Quantiles come from OpenDP's exponential mechanism.",
            "Values marked 'public' come from the declared schema (bounds, categories, bin edges, quantile "
            "candidates).",
            "Counts are clamped at 0; means and quantiles are clamped to the declared bounds.",
            "Rows whose value is null or cannot be parsed are not counted.",
            "Sums are computed on a public grid of (max - min) / 16777216 steps.",
        ],
    }


def _count_value(noisy: float) -> int:
    return max(int(noisy), 0)


def _column_release(plan: ColumnPlan, parameters: dict[str, Any], noisy: dict[int, Any]) -> dict[str, Any]:
    kind, stats, queries = plan.kind, plan.stats, plan.queries
    out: dict[str, Any] = {"name": plan.name, "type": plan.type}
    if not stats:
        out["skipped"] = "none of the requested statistics applies to this column type"
        return out
    is_time = kind == "datetime"

    def shown(x: float) -> Any:
        return _iso(x) if is_time else x

    if plan.low is not None and kind != "boolean":
        declared_min, declared_max = plan.declared
        out["bounds"] = {"min": declared_min, "max": declared_max, "source": "public"}
    count_q = queries.get("count")
    noisy_count = float(noisy[id(count_q)]) if count_q is not None else 0.0
    if count_q is not None and "count" in stats:
        out["count"] = {
            "value": _count_value(noisy_count),
            "source": "dp",
            "noise_std": count_q.scale,
            "mechanism": "discrete Gaussian (OpenDP)",
        }
    if ("sum" in stats or "mean" in stats) and plan.low is not None and plan.high is not None:
        low, high = plan.low, plan.high
        mid = (low + high) / 2
        sum_q = queries.get("centred_sum")
        centred = float(noisy[id(sum_q)]) * plan.step if sum_q is not None else 0.0
        sum_std = sum_q.scale * plan.step if sum_q is not None else 0.0
        count_std = count_q.scale if count_q is not None else 0.0
        if "sum" in stats:
            out["sum"] = {
                "value": centred + mid * max(noisy_count, 0.0),
                "source": "dp",
                "noise_std": math.hypot(sum_std, abs(mid) * count_std),
                "mechanism": "discrete Gaussian (OpenDP) on the grid sum and the count",
            }
        if "mean" in stats:
            mean = mid + centred / max(noisy_count, 1.0)
            mean = min(max(mean, low), high)
            out["mean"] = {"value": shown(mean), "source": "dp"}
    if "histogram" in queries:
        hist_q = queries["histogram"]
        counts = [_count_value(v) for v in noisy[id(hist_q)]]
        common = {"counts": counts, "source": "dp", "bins_source": "public", "noise_std": hist_q.scale}
        common["mechanism"] = "discrete Gaussian (OpenDP)"
        if kind == "categorical":
            out["histogram"] = {"categories": plan.categories, **common}
        elif kind == "boolean":
            out["histogram"] = {"categories": ["false", "true"], **common}
        else:
            out["histogram"] = {"edges": [shown(float(e)) for e in plan.edges], **common}  # type: ignore[union-attr]
    if "quantiles" in stats and plan.low is not None and plan.high is not None and kind != "boolean":
        q_low, q_high = plan.low, plan.high
        levels = parameters["quantiles"]
        if plan.quantiles:
            values = [float(noisy[id(q)]) for q in plan.quantiles]
            method = (
                f"OpenDP exponential mechanism (report-noisy-max, Gumbel) over {QUANTILE_CANDIDATES} candidates "
                "evenly spread over the declared bounds"
            )
            scales: list[float] | None = [q.scale for q in plan.quantiles]
        else:
            values = [q_low for _ in levels]
            method = "exact: the declared min equals the declared max"
            scales = None
        out["quantiles"] = {
            "levels": levels,
            "values": [shown(min(max(v, q_low), q_high)) for v in values],
            "source": "dp",
            "method": method,
        }
        if scales is not None:
            out["quantiles"]["scale"] = scales
    return out
