"""A classifier can predict an integer column whose declared bounds span a few values (a 0/1
label, a 1-5 grade): each whole number is a class."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from compute_to_data.runner.params import ParameterError, parameters_normalize
from compute_to_data.runner.run import run_spec

SCHEMA = {
    "columns": [
        {"name": "x", "type": "float", "min": 0, "max": 1},
        {"name": "label", "type": "integer", "min": 0, "max": 1},
        {"name": "year", "type": "integer", "min": 1900, "max": 2100},
    ]
}


def test_an_integer_label_is_a_class_per_value_and_trains(tmp_path):
    parameters = parameters_normalize(
        "dp-logistic-regression",
        {"target": "label", "features": ["x"], "epochs": 3, "batch_size": 32, "epsilon": 1.0},
        schema=SCHEMA,
        epsilon_max=1,
        delta_max=1e-5,
    )
    rng = np.random.default_rng(2)
    rows = "\n".join(f"{v:.4f},{int(v > 0.5)},2000" for v in rng.uniform(0, 1, 400))
    (tmp_path / "data.csv").write_text("x,label,year\n" + rows + "\n")
    (tmp_path / "out").mkdir()
    spec = {
        "algorithm": "dp-logistic-regression",
        "parameters": parameters,
        "schema": SCHEMA,
        "data_file": str(tmp_path / "data.csv"),
        "data_format": "csv",
        "eval_file": None,
        "output_dir": str(tmp_path / "out"),
        "threads": 1,
        "public_rows": 400,
    }
    stream = io.StringIO()
    assert run_spec(spec, stream=stream) == 0, stream.getvalue()
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert '"0"' in json.dumps(card) and '"1"' in json.dumps(card)


def test_an_integer_target_with_too_many_values_is_refused():
    with pytest.raises(ParameterError) as refused:
        parameters_normalize("dp-mlp-classifier", {"target": "year"}, schema=SCHEMA, epsilon_max=1, delta_max=1e-5)
    assert refused.value.field == "target" and "one class each" in refused.value.message
