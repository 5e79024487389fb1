"""The accuracy preview (issue 12, "go beyond"): public error bounds before paying, the same
numbers the job will use, shrinking as epsilon grows."""

from __future__ import annotations

import io
import json

import pytest

from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.preview import accuracy_preview
from compute_to_data.runner.run import run_spec
from tests.compute_to_data.runner.support import SCHEMA as TRAIN_SCHEMA
from tests.compute_to_data.runner.support import training_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

SCHEMA = {
    "columns": [
        {"name": "a", "type": "float", "min": 0, "max": 10},
        {"name": "c", "type": "categorical", "categories": ["x", "y", "z"]},
        {"name": "d", "type": "boolean"},
        {"name": "e", "type": "datetime", "min": "2020-01-01", "max": "2021-01-01"},
    ]
}


def _statistics(epsilon: float) -> dict:
    params = parameters_normalize("dp-statistics", {"epsilon": epsilon}, schema=SCHEMA, epsilon_max=10, delta_max=1e-5)
    return accuracy_preview(algorithm="dp-statistics", parameters=params, schema=SCHEMA, public_rows=1_000)


def _bounds(preview: dict) -> list[float]:
    out = []
    for col in preview["columns"]:
        for key in ("count", "sum", "mean", "histogram"):
            if key in col:
                out.append(col[key]["error_95"])
        if "quantiles" in col:
            out += col["quantiles"]["rank_error_95"]
    return out


def test_statistics_bounds_shrink_as_epsilon_grows_and_are_json():
    low, high = _statistics(0.5), _statistics(4.0)
    json.dumps(low, allow_nan=False)
    assert len(_bounds(low)) == len(_bounds(high)) > 8
    assert all(b_high < b_low for b_low, b_high in zip(_bounds(low), _bounds(high), strict=True))
    col = {c["name"]: c for c in low["columns"]}
    assert col["a"]["count"]["error_95"] == pytest.approx(1.96 * col["a"]["count"]["noise_std"], rel=1e-3)
    assert set(col["a"]["quantiles"]) >= {"levels", "rank_error_95", "level_error_95", "candidate_spacing"}
    assert col["e"]["unit"] == "seconds" and "sum" not in col["e"]
    assert "mean" not in col["c"] and col["c"]["histogram"]["error_95"] > 0
    assert low["accounting"] == "zCDP (OpenDP)" and low["confidence"] == 0.95


def test_statistics_preview_states_the_scales_the_job_uses(tmp_path):
    params = parameters_normalize("dp-statistics", {}, schema=SCHEMA, epsilon_max=1, delta_max=1e-5)
    preview = accuracy_preview(algorithm="dp-statistics", parameters=params, schema=SCHEMA, public_rows=3)
    (tmp_path / "d.csv").write_text("a,c,d,e\n1,x,true,2020-02-02\n2,y,false,2020-03-03\n3,z,true,\n")
    spec = {"algorithm": "dp-statistics", "parameters": params, "schema": SCHEMA, "data_file": str(tmp_path / "d.csv"),
            "data_format": "csv", "output_dir": str(tmp_path / "out"), "public_rows": 3}  # fmt: skip
    assert run_spec(spec, stream=io.StringIO()) == 0
    doc = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert preview["noise_multiplier"] == doc["noise_multiplier"] and preview["queries"] == doc["queries"]
    released = {c["name"]: c for c in doc["columns"]}
    for col in preview["columns"]:
        assert col["count"]["noise_std"] == released[col["name"]]["count"]["noise_std"]


def test_training_preview_equals_what_the_job_reports(tmp_path):
    params = parameters_normalize(
        "dp-logistic-regression",
        {"target": "label", "epochs": 2, "batch_size": 32},
        schema=TRAIN_SCHEMA,
        epsilon_max=1,
        delta_max=1e-5,
    )
    preview = accuracy_preview(
        algorithm="dp-logistic-regression",
        parameters=params,
        schema=TRAIN_SCHEMA,
        public_rows=200,
        holdout_fraction=0.2,
    )
    json.dumps(preview, allow_nan=False)
    spec = {"algorithm": "dp-logistic-regression", "parameters": params, "schema": TRAIN_SCHEMA,
            "data_file": str(training_data(tmp_path)), "data_format": "csv", "output_dir": str(tmp_path / "out"),
            "public_rows": 200, "holdout": {"fraction": 0.2, "key": "ab" * 32}}  # fmt: skip
    assert run_spec(spec, stream=io.StringIO()) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for key in ("noise_multiplier", "steps", "sample_rate", "expected_batch_size", "eval_noise_multiplier"):
        assert preview[key] == manifest[key], key
    assert preview["public_training_rows"] == 160 and preview["public_holdout_rows"] == 40
    stronger = accuracy_preview(
        algorithm="dp-logistic-regression",
        parameters={**params, "epsilon": 4.0},
        schema=TRAIN_SCHEMA,
        public_rows=200,
        holdout_fraction=0.2,
    )
    assert stronger["noise_multiplier"] < preview["noise_multiplier"]
    assert stronger["metric_error_95"]["dp_accuracy"] < preview["metric_error_95"]["dp_accuracy"]
