"""What pages show: released numbers as table text, charts' series, budget bars, a job's progress
and parameters in words. Pure functions over what selectors and services return; no queries, no
writes (``with_titles`` only labels the jobs it is given)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from compute_to_data import selectors_dashboard as dashboard
from compute_to_data.models import ComputeJob
from compute_to_data.runner import params as runner_params
from compute_to_data.services import budget as budget_services
from frontend.forms import plain_number

# The runner's phases (``progress.phase``) in words.
PHASE_LABELS = {
    "provisioning": "Preparing the sandbox",
    "loading": "Loading the data",
    "training": "Training",
    "evaluating": "Evaluating",
    "statistics": "Computing the statistics",
    "writing": "Writing the results",
    "publishing": "Publishing the results",
    "finished": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
METRIC_SOURCES = {"dp": "DP-protected and accounted", "public": "Computed from public inputs"}
FAILURE_CAUSES = {
    "buyer": "the buyer's request or input",
    "limit": "a resource limit of the sandbox",
    "provider": "the provider's file",
    "platform": "our fault: not yours",
    "moderator": "a moderator's decision: not yours",
}
# Rows of a curve shown as a table (the chart gets every point, up to CHART_POINTS).
TABLE_POINTS = 60
CHART_POINTS = 1000


# --- algorithms ----------------------------------------------------------------------------


def algorithm_described(name: str | None) -> dict[str, Any]:
    """One algorithm of the runner's catalogue (the first when ``name`` is not one)."""
    described = runner_params.algorithms_describe()
    return next((a for a in described if a["name"] == name), described[0])


def algorithm_title(name: str) -> str:
    spec = runner_params.ALGORITHMS.get(name)
    return spec.title if spec else name


def with_titles(jobs: list[ComputeJob]) -> list[ComputeJob]:
    for job in jobs:
        # The templates' ``job.algorithm_title``: a label for the page, not a field of the model.
        setattr(job, "algorithm_title", algorithm_title(job.algorithm))  # noqa: B010
    return jobs


def parameter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(parameter_text(v) for v in value)
    return plain_number(value) if isinstance(value, float) else str(value)


# --- budget and progress -------------------------------------------------------------------


def _percent(part: Decimal, whole: Decimal) -> str:
    return f"{float(part / whole * 100):.2f}" if whole else "0"


def budget_view(summary: budget_services.BudgetSummary, dataset_id: int) -> dict[str, Any]:
    total = summary.epsilon_total
    return {
        "summary": summary,
        "dataset_id": dataset_id,
        "epsilon_left": summary.epsilon_left,
        "delta_total": float(summary.delta_total),
        "delta_used": float(summary.delta_reserved + summary.delta_spent),
        "delta_left": float(summary.delta_left),
        "spent_pct": _percent(min(summary.epsilon_spent, total), total),
        "reserved_pct": _percent(min(summary.epsilon_reserved, max(total - summary.epsilon_spent, Decimal(0))), total),
    }


def progress_view(job: ComputeJob) -> dict[str, Any]:
    progress = job.progress or {}
    phase = progress.get("phase") or ""
    epsilon = progress.get("epsilon")
    return {
        "percent": job.percent,
        "phase": phase,
        "phase_label": PHASE_LABELS.get(phase, phase.replace("_", " ").capitalize()),
        "epoch": progress.get("epoch") or 0,
        "epochs": progress.get("epochs") or 0,
        "step": progress.get("step") or 0,
        "steps": progress.get("steps") or 0,
        "epsilon": plain_number(round(float(epsilon), 4)) if isinstance(epsilon, int | float) else "0",
    }


def ledger_percent(part: Decimal | float, whole: Decimal | float) -> float:
    """``part`` as a percentage of ``whole`` for a bar, capped at 100; 0 against no cap."""
    whole = float(whole)
    return 0.0 if whole <= 0 else round(min(float(part) / whole, 1.0) * 100, 1)


# --- released results ----------------------------------------------------------------------


def thin(points: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` evenly spaced points, always with the last one."""
    if len(points) <= limit:
        return points
    stride = (len(points) - 1) / (limit - 1)
    return [points[round(i * stride)] for i in range(limit)]


def shown(value: Any, digits: int = 4) -> Any:
    """A released number or date as text for a table cell: 0.1234567 -> 0.1235, 0.2100 -> 0.21;
    ISO dates pass; None is a dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else value
    return plain_number(round(value, digits)) if isinstance(value, float) else value


def curves(results: dict[str, Any]) -> dict[str, Any]:
    curve = [p for p in results.get("curve") or [] if isinstance(p, dict)]
    epsilon_curve = [
        {"step": p[0], "epsilon": p[1]}
        for p in results.get("epsilon_curve") or []
        if isinstance(p, list | tuple) and len(p) >= 2
    ]
    has_loss = any(isinstance(p.get("loss"), int | float) for p in curve)
    return {
        "curve": [
            {
                "epoch": p.get("epoch"),
                "step": p.get("step"),
                **{k: shown(p.get(k)) for k in ("epsilon", "loss", "accuracy")},
            }
            for p in curve
        ]
        if has_loss
        else [],
        "has_accuracy": any(isinstance(p.get("accuracy"), int | float) for p in curve),
        "curve_chart": {
            "epochs": [p.get("epoch") for p in curve],
            "loss": [p.get("loss") for p in curve],
            "accuracy": [p.get("accuracy") for p in curve],
        }
        if has_loss
        else None,
        "epsilon_table": [
            {"step": p["step"], "epsilon": shown(p["epsilon"])} for p in thin(epsilon_curve, TABLE_POINTS)
        ],
        "epsilon_thinned": len(epsilon_curve) > TABLE_POINTS,
        "epsilon_chart": {
            "steps": [p["step"] for p in thin(epsilon_curve, CHART_POINTS)],
            "epsilon": [p["epsilon"] for p in thin(epsilon_curve, CHART_POINTS)],
        }
        if epsilon_curve
        else None,
    }


def metrics_view(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The released metrics, each with its value as text and where the number comes from."""
    return [
        {
            **m,
            "shown": shown(m.get("value")),
            "source_label": METRIC_SOURCES.get(m.get("source", ""), METRIC_SOURCES["public"]),
        }
        for m in results.get("metrics") or []
        if isinstance(m, dict)
    ]


def accounting_view(results: dict[str, Any], job: ComputeJob) -> dict[str, Any]:
    """The privacy accounting of a finished job as table text."""
    return {
        "epsilon_spent": shown(results.get("epsilon_spent")),
        "delta": plain_number(results["delta"]) if isinstance(results.get("delta"), float) else shown(job.delta, 12),
        "accountant": str(results.get("accountant") or "—").upper(),
        "noise_multiplier": shown(results.get("noise_multiplier")),
        "sample_rate": shown(results.get("sample_rate"), 6),
        "steps": shown(results.get("steps")),
    }


def histogram(raw: Any) -> dict[str, Any] | None:
    """The bars of a released histogram ({categories | edges, counts}): labels, counts and the
    table rows."""
    if not isinstance(raw, dict) or not isinstance(raw.get("counts"), list):
        return None
    counts = raw["counts"]
    edges, categories = raw.get("edges"), raw.get("categories")
    if isinstance(categories, list) and len(categories) == len(counts):
        labels = [str(c) for c in categories]
    elif isinstance(edges, list) and len(edges) == len(counts) + 1:
        last = len(counts) - 1
        labels = [f"[{shown(edges[i])}, {shown(edges[i + 1])}{']' if i == last else ')'}" for i in range(len(counts))]
    else:
        labels = [str(i + 1) for i in range(len(counts))]
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in counts):
        return None
    return {"labels": labels, "counts": counts, "rows": list(zip(labels, counts, strict=True))}


def statistics_view(document: Any) -> list[dict[str, Any]]:
    """The runner's statistics document (``statistics.json``: per column its count, sum, mean,
    histogram and quantiles, each ``{"value", "source", "noise_std"}``) as table rows."""
    columns = document.get("columns") if isinstance(document, dict) else None
    rows = []
    for index, col in enumerate(c for c in columns or [] if isinstance(c, dict)):
        scalars = []
        for key, label in (("count", "Count"), ("sum", "Sum"), ("mean", "Mean")):
            stat = col.get(key)
            if isinstance(stat, dict):
                noise = stat.get("noise_std")
                scalars.append((label, shown(stat.get("value")), shown(noise) if noise is not None else None))
        quantiles, bounds = col.get("quantiles"), col.get("bounds")
        if not isinstance(quantiles, dict):
            quantiles = {}
        levels, values = quantiles.get("levels") or [], quantiles.get("values") or []
        if not isinstance(bounds, dict):
            bounds = None
        rows.append(
            {
                "index": index,
                "name": str(col.get("name", "")),
                "type": col.get("type", ""),
                "skipped": col.get("skipped", ""),
                "bounds": (shown(bounds.get("min")), shown(bounds.get("max"))) if bounds else None,
                "scalars": scalars,
                "quantiles": [(shown(q), shown(v)) for q, v in zip(levels, values, strict=False)],
                "histogram": histogram(col.get("histogram")),
                "chart_id": f"histogram-data-{index}",
            }
        )
    return rows


# --- provider dashboard --------------------------------------------------------------------


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def dashboard_charts(figures: dashboard.ProviderDashboard) -> dict[str, Any]:
    """What the dashboard's charts draw (the tables show the same figures from the context)."""
    groups = [g for g in dashboard.JOB_GROUPS if figures.jobs.by_group.get(g)]
    return {
        "budget": {
            "labels": [f.dataset.title for f in figures.datasets],
            "spent": [_number(f.budget.epsilon_spent) for f in figures.datasets],
            "reserved": [_number(f.budget.epsilon_reserved) for f in figures.datasets],
            "left": [_number(f.budget.epsilon_left) for f in figures.datasets],
        },
        "earnings": {
            "labels": [f.dataset.title for f in figures.datasets],
            "token": figures.totals[0].token if len(figures.totals) == 1 else "",
            "paid": [_number(f.earnings.paid) for f in figures.datasets],
            "in_escrow": [_number(f.earnings.in_escrow) for f in figures.datasets],
            "refunded": [_number(f.earnings.refunded) for f in figures.datasets],
        },
        "jobs": {
            "labels": [d.day.isoformat() for d in figures.jobs_per_day],
            "series": [
                {
                    "key": g,
                    "label": dashboard.JOB_GROUPS[g][0],
                    "counts": [d.by_group.get(g, 0) for d in figures.jobs_per_day],
                }
                for g in groups
            ],
        },
    }
