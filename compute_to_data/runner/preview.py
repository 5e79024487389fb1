"""Accuracy preview for a quote, before anything is paid: what the noise of a job will be, from
its public inputs only (algorithm, normalised parameters, declared schema, the owner's public row
count). No data is read and nothing is trained.

``accuracy_preview`` returns a JSON-able dict. Common keys: ``algorithm``, ``epsilon``,
``delta``, ``public_rows``, ``confidence`` (0.95), ``notes`` (list of sentences).

dp-statistics adds ``accounting`` ("zCDP (OpenDP)"), ``rho``, ``queries``, ``noise_multiplier``
and ``columns``: one entry per requested column, ``{"name", "type", "unit"?, "skipped"?}`` plus,
per released statistic, its public noise and a 95% error bound (``error_95``: the released value
is within ± that of the exact one with probability >= 0.95):

* ``count`` / ``histogram``: ``{"noise_std", "error_95"}``, error_95 = 1.96 noise_std (discrete
  Gaussian; its std is at most its scale), per count / per bin;
* ``sum``: ``{"noise_std", "error_95"}`` (the grid sum's and the count's noise combined);
* ``mean``: ``{"error_95", "basis"}``: an approximate bound assuming about ``public_rows``
  non-null values: 1.96 (sum noise + half the range times count noise) / public_rows;
* ``quantiles``: ``{"levels", "scale", "rank_error_95", "level_error_95", "candidate_spacing"}``:
  by the exponential mechanism's utility bound the released candidate's rank is within
  ``rank_error_95 = max(q, 1 - q) ln(C / 0.05) / sqrt(8 rho_q)`` rows of the q-quantile's rank (C
  candidates), i.e. between the true quantiles at levels q ± level_error_95 (= rank_error_95 /
  public_rows), then rounded to the candidate grid (``candidate_spacing``). Turning ranks into
  values needs the data's density, which is private, so no value bound is given.

Training algorithms add ``accountant``, ``noise_multiplier``, ``steps``, ``steps_per_epoch``,
``epochs``, ``sample_rate``, ``expected_batch_size``, ``public_training_rows``,
``public_holdout_rows``, ``holdout_fraction``, ``gradient_noise_std`` (std of the noise on each
coordinate of the averaged clipped gradient: noise_multiplier * max_grad_norm /
expected_batch_size), ``eval_noise_multiplier``, ``eval_steps``, ``eval_noise_std`` and
``metric_error_95``: for classifiers ``{"dp_accuracy": ...}``, for regression ``{"dp_mse_scaled":
...}``, an approximate bound from the evaluation noise over the public evaluation row count (null
when private metrics are off).
"""

from __future__ import annotations

import math
from typing import Any

from .params import ALGORITHMS

Z95 = 1.959963984540054
BETA = 0.05


def _statistics_preview(parameters: dict[str, Any], schema: dict[str, Any], public_rows: int) -> dict[str, Any]:
    from .statistics import QUANTILE_CANDIDATES, statistics_plan

    plan = statistics_plan(parameters, schema)
    columns: list[dict[str, Any]] = []
    for col in plan.columns:
        entry: dict[str, Any] = {"name": col.name, "type": col.type}
        columns.append(entry)
        if not col.stats:
            entry["skipped"] = "none of the requested statistics applies to this column type"
            continue
        if col.kind == "datetime":
            entry["unit"] = "seconds"
        count_q = col.queries.get("count")
        count_std = count_q.scale if count_q is not None else 0.0
        if count_q is not None and "count" in col.stats:
            entry["count"] = {"noise_std": count_std, "error_95": Z95 * count_std}
        if ("sum" in col.stats or "mean" in col.stats) and col.low is not None:
            sum_q = col.queries.get("centred_sum")
            sum_std = sum_q.scale * col.step if sum_q is not None else 0.0
            mid = (col.low + col.high) / 2  # type: ignore[operator]
            half = (col.high - col.low) / 2  # type: ignore[operator]
            if "sum" in col.stats:
                total = math.hypot(sum_std, abs(mid) * count_std)
                entry["sum"] = {"noise_std": total, "error_95": Z95 * total}
            if "mean" in col.stats:
                entry["mean"] = {
                    "error_95": min(Z95 * (sum_std + half * count_std) / public_rows, 2 * half),
                    "basis": "approximate, assuming about public_rows non-null values; never above the declared range",
                }
        if "histogram" in col.queries:
            std = col.queries["histogram"].scale
            entry["histogram"] = {"noise_std": std, "error_95": Z95 * std}
        if "quantiles" in col.stats and col.low is not None and col.kind != "boolean":
            levels = list(parameters["quantiles"])
            if col.quantiles:
                ranks = [
                    max(float(q.level or 0.5), 1 - float(q.level or 0.5))
                    * math.log(QUANTILE_CANDIDATES / BETA)
                    / math.sqrt(8 * q.rho)
                    for q in col.quantiles
                ]
                entry["quantiles"] = {
                    "levels": levels,
                    "scale": [q.scale for q in col.quantiles],
                    "rank_error_95": ranks,
                    "level_error_95": [min(r / public_rows, 1.0) for r in ranks],
                    "candidate_spacing": (col.high - col.low) / (QUANTILE_CANDIDATES - 1),  # type: ignore[operator]
                }
            else:
                entry["quantiles"] = {"levels": levels, "error_95": 0.0, "basis": "exact: min equals max"}
    return {
        "accounting": "zCDP (OpenDP)",
        "rho": plan.rho,
        "queries": len(plan.queries),
        "noise_multiplier": plan.noise_multiplier,
        "columns": columns,
        "notes": [
            "Error bounds hold with probability 0.95 for each number separately, not for all at once.",
            "Counts, histograms and sums: discrete Gaussian noise of the stated std; means: approximate.",
            "Quantiles: an error in rank (rows) and in level, from the exponential mechanism's utility bound.",
        ],
    }


def _training_preview(
    algorithm: str, parameters: dict[str, Any], public_rows: int, holdout_fraction: float
) -> dict[str, Any]:
    from . import accounting
    from .train import loss_bound_for, public_split

    kind = ALGORITHMS[algorithm].kind
    train_rows, holdout_rows = public_split(public_rows, holdout_fraction)
    plan = accounting.training_plan(
        rows=train_rows,
        batch_size=parameters["batch_size"],
        epochs=parameters["epochs"],
        epsilon=parameters["epsilon"],
        delta=parameters["delta"],
        mechanism=parameters["accountant"],
        private_metrics=parameters["private_metrics"],
    )
    dims = 3 if kind == "classifier" else 2
    eval_std = plan.eval_noise_multiplier * math.sqrt(dims)
    eval_rows = holdout_rows if holdout_fraction > 0 else train_rows
    metric_error: dict[str, float] | None = None
    if plan.eval_steps:
        # One release per epoch; the count's releases are averaged, the last epoch's sum is used.
        relative = Z95 * eval_std / max(eval_rows, 1)
        if kind == "classifier":
            metric_error = {"dp_accuracy": min(relative, 1.0)}
        else:
            metric_error = {"dp_mse_scaled": min(relative * loss_bound_for(kind, 2), loss_bound_for(kind, 2))}
    return {
        "accountant": parameters["accountant"],
        "noise_multiplier": plan.noise_multiplier,
        "steps": plan.steps,
        "steps_per_epoch": plan.steps_per_epoch,
        "epochs": plan.epochs,
        "sample_rate": plan.sample_rate,
        "expected_batch_size": plan.expected_batch_size,
        "public_training_rows": train_rows,
        "public_holdout_rows": holdout_rows,
        "holdout_fraction": holdout_fraction,
        "gradient_noise_std": plan.noise_multiplier * parameters["max_grad_norm"] / plan.expected_batch_size,
        "eval_noise_multiplier": plan.eval_noise_multiplier,
        "eval_steps": plan.eval_steps,
        "eval_noise_std": eval_std,
        "metric_error_95": metric_error,
        "notes": [
            "All figures come from the public row count and the parameters; the job computes the same ones.",
            "The DP metrics are evaluated on the holdout rows when a holdout is set, else on the training rows.",
        ],
    }


def accuracy_preview(
    *,
    algorithm: str,
    parameters: dict[str, Any],
    schema: dict[str, Any],
    public_rows: int,
    holdout_fraction: float = 0.0,
) -> dict[str, Any]:
    """The public noise of a job and the 95% error bounds of what it releases (see the module
    docstring for the keys). ``parameters`` must be normalised (``parameters_normalize``)."""
    if algorithm not in ALGORITHMS:
        raise ValueError("unknown algorithm")
    if not isinstance(public_rows, int) or public_rows < 1:
        raise ValueError("public_rows must be a positive integer")
    common = {
        "algorithm": algorithm,
        "epsilon": parameters["epsilon"],
        "delta": parameters["delta"],
        "public_rows": public_rows,
        "confidence": 0.95,
    }
    if ALGORITHMS[algorithm].kind == "statistics":
        return {**common, **_statistics_preview(parameters, schema, public_rows)}
    return {**common, **_training_preview(algorithm, parameters, public_rows, float(holdout_fraction))}
