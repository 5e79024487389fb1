"""What pages show, as pure functions: released numbers as table text, thinned curves, histograms
from whatever a results document holds (malformed parts are dropped, never a 500), budget bars and
a job's progress in words."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from compute_to_data.services.budget import BudgetSummary
from frontend import presenters


def test_shown_rounds_released_floats_and_passes_the_rest():
    assert presenters.shown(0.1234567) == "0.1235"
    assert presenters.shown(0.21) == "0.21"
    assert presenters.shown(42) == 42
    assert presenters.shown(None) == "—"
    assert presenters.shown(True) is True  # a flag is not a number
    assert presenters.shown("2026-01-01") == "2026-01-01"


def test_thin_keeps_the_first_and_the_last_point():
    points = list(range(1001))
    thinned = presenters.thin(points, 60)
    assert len(thinned) == 60 and thinned[0] == 0 and thinned[-1] == 1000
    assert presenters.thin([1, 2], 60) == [1, 2]


def test_curves_table_is_thinned_but_the_chart_keeps_every_point_up_to_its_cap():
    results = {"epsilon_curve": [[step, step / 1000] for step in range(1, 201)] + [["bad"], "x"]}
    shown = presenters.curves(results)
    assert len(shown["epsilon_table"]) == presenters.TABLE_POINTS and shown["epsilon_thinned"]
    assert len(shown["epsilon_chart"]["steps"]) == 200 and shown["epsilon_chart"]["steps"][-1] == 200
    assert shown["curve"] == [] and shown["curve_chart"] is None  # no loss released: no loss chart


def test_histogram_labels_bins_and_refuses_malformed_counts():
    bins = presenters.histogram({"edges": [0, 0.5, 1], "counts": [3, 4]})
    assert bins["rows"] == [("[0, 0.5)", 3), ("[0.5, 1]", 4)]
    assert presenters.histogram({"categories": ["a", "b"], "counts": [1, 2]})["labels"] == ["a", "b"]
    assert presenters.histogram({"edges": [0, 1], "counts": [1, 2]})["labels"] == ["1", "2"]
    assert presenters.histogram({"counts": [True, 2]}) is None
    assert presenters.histogram({"counts": "12"}) is None
    assert presenters.histogram(["not", "a", "dict"]) is None


def test_statistics_view_skips_what_is_not_a_column():
    document = {
        "columns": [
            {"name": "age", "type": "numeric", "mean": {"value": 41.23456, "noise_std": 0.5}, "bounds": {"min": 0}},
            "not a column",
        ]
    }
    (row,) = presenters.statistics_view(document)
    assert row["name"] == "age" and row["scalars"] == [("Mean", "41.2346", "0.5")]
    assert row["bounds"] == (0, "—") and row["histogram"] is None
    assert presenters.statistics_view({"columns": "x"}) == [] and presenters.statistics_view(None) == []


def test_budget_view_bars_never_exceed_the_total():
    summary = BudgetSummary(
        epsilon_total=Decimal("10"),
        epsilon_per_job=Decimal("1"),
        delta=1e-5,
        epsilon_reserved=Decimal("4"),
        epsilon_spent=Decimal("8"),
    )
    view = presenters.budget_view(summary, 7)
    assert view["spent_pct"] == "80.00" and view["reserved_pct"] == "20.00" and view["epsilon_left"] == 0
    empty = BudgetSummary(Decimal(0), Decimal(0), 0.0, Decimal(0), Decimal(0))
    assert presenters.budget_view(empty, 7)["spent_pct"] == "0"


def test_progress_and_parameters_in_words():
    job = SimpleNamespace(percent=40, progress={"phase": "cooling_down", "epsilon": 0.123456, "epoch": 2})
    view = presenters.progress_view(job)
    assert view["phase_label"] == "Cooling down" and view["epsilon"] == "0.1235" and view["steps"] == 0
    job.progress = {"phase": "training", "epsilon": "NaN"}
    assert presenters.progress_view(job)["phase_label"] == "Training"
    assert presenters.progress_view(job)["epsilon"] == "0"
    assert presenters.parameter_text([True, 0.5, "x"]) == "yes, 0.5, x"


def test_ledger_percent_is_capped_and_zero_without_a_cap():
    assert presenters.ledger_percent(Decimal("3"), Decimal("2")) == 100.0
    assert presenters.ledger_percent(1, 3) == 33.3
    assert presenters.ledger_percent(1, 0) == 0.0
