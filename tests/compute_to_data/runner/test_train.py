"""The runner's spec keys of issue 12: the public row count (required) and the holdout split,
keyed by the dataset's secret so that no buyer can choose it; DP metrics on the holdout differ
from the training accuracy of a model that overfits."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compute_to_data.runner.errors import InvalidParameters
from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.run import run_spec, spec_check
from compute_to_data.runner.train import holdout_split, public_split
from tests.compute_to_data.runner.support import torch_model_from_weights

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

KEY = "0123456789abcdef" * 4
FEATURES = [f"f{i}" for i in range(80)]
SCHEMA = {
    "columns": [
        *({"name": f, "type": "float", "min": 0, "max": 1} for f in FEATURES),
        {"name": "label", "type": "boolean"},
    ]
}


def test_the_split_is_stable_per_key_and_not_the_buyers_choice():
    first = holdout_split(10_000, 0.2, KEY)
    assert np.array_equal(first, holdout_split(10_000, 0.2, KEY))
    assert not np.array_equal(first, holdout_split(10_000, 0.2, "f" * 64))
    assert abs(first.mean() - 0.2) < 0.02
    # The first rows keep their side when the file grows: the split is per row index.
    assert np.array_equal(first[:5_000], holdout_split(5_000, 0.2, KEY))
    assert not holdout_split(100, 0.0, KEY).any()
    assert public_split(1_000, 0.2) == (800, 200) and public_split(1, 0.5) == (1, 0)


def _base_spec(algorithm: str = "dp-logistic-regression") -> dict:
    given = {"target": "label"} if algorithm != "dp-statistics" else {}
    params = parameters_normalize(algorithm, given, schema=SCHEMA, epsilon_max=1.0, delta_max=1e-5)
    return {
        "algorithm": algorithm,
        "parameters": params,
        "schema": SCHEMA,
        "data_file": "/data/x.csv",
        "data_format": "csv",
        "public_rows": 100,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"public_rows": None}, "public_rows"),
        ({"public_rows": 0}, "public_rows"),
        ({"public_rows": 10.5}, "public_rows"),
        ({"public_rows": True}, "public_rows"),
        ({"holdout": {"fraction": 0.6, "key": KEY}}, "fraction"),
        ({"holdout": {"fraction": -0.1, "key": KEY}}, "fraction"),
        ({"holdout": {"fraction": 0.2, "key": "xyz"}}, "key"),
        ({"holdout": {"fraction": 0.2}}, "holdout"),
        ({"holdout": 0.2}, "holdout"),
    ],
)
def test_bad_public_rows_or_holdout_are_refused(change, message):
    spec = {**_base_spec(), **change}
    if change.get("public_rows", 1) is None:
        del spec["public_rows"]
    with pytest.raises(InvalidParameters, match=message):
        spec_check(spec)


def test_statistics_refuse_a_holdout_and_training_accepts_one():
    with pytest.raises(InvalidParameters, match="no holdout"):
        spec_check({**_base_spec("dp-statistics"), "holdout": {"fraction": 0.2, "key": KEY}})
    assert spec_check(_base_spec("dp-statistics"))["holdout"] is None
    checked = spec_check({**_base_spec(), "holdout": {"fraction": 0.25, "key": KEY}})
    assert checked["holdout"] == {"fraction": 0.25, "key": KEY} and checked["public_rows"] == 100


def _write(folder: Path, x: np.ndarray, y: np.ndarray) -> Path:
    lines = [",".join([*FEATURES, "label"])]
    lines += [
        ",".join([*(f"{v:.5f}" for v in row), "true" if label else "false"]) for row, label in zip(x, y, strict=True)
    ]
    path = folder / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_holdout_metrics_expose_a_model_that_overfits(tmp_path):
    # Random labels on 80 features: nothing generalises, and ~60 training rows in 80 dimensions are
    # easy to memorise, so the model is right about its training rows and at chance on the holdout.
    rng = np.random.default_rng(5)
    n = 120
    x, y = rng.uniform(0, 1, size=(n, len(FEATURES))), rng.integers(0, 2, n)
    params = parameters_normalize(
        "dp-mlp-classifier",
        {"target": "label", "hidden_sizes": [128], "epochs": 50, "batch_size": 8, "learning_rate": 1.0,
         "max_grad_norm": 1.0, "epsilon": 1_000.0},
        schema=SCHEMA,
        epsilon_max=1_000.0,
        delta_max=1e-5,
    )  # fmt: skip
    out = tmp_path / "out"
    spec = {
        "algorithm": "dp-mlp-classifier",
        "parameters": params,
        "schema": SCHEMA,
        "data_file": str(_write(tmp_path, x, y)),
        "data_format": "csv",
        "output_dir": str(out),
        "public_rows": n,
        "holdout": {"fraction": 0.5, "key": KEY},
    }
    stream = io.StringIO()
    assert run_spec(spec, stream=stream) == 0, stream.getvalue()[-500:]
    manifest = json.loads((out / "manifest.json").read_text())
    metrics = {m["name"]: m for m in manifest["metrics"]}
    assert manifest["evaluated_on"] == "holdout" and metrics["dp_accuracy"]["evaluated_on"] == "holdout"
    assert "holdout" in metrics["dp_accuracy"]["description"]
    # The training accuracy, computed here from the released weights on the rows the runner trained on.
    train = ~holdout_split(n, 0.5, KEY)
    model = torch_model_from_weights(out / "model.safetensors")
    with torch.no_grad():
        guess = model(torch.from_numpy(x[train].astype(np.float32)))[:, 0] > 0
    train_accuracy = float((guess.numpy() == y[train].astype(bool)).mean())
    holdout_accuracy = metrics["dp_accuracy"]["value"]
    assert train_accuracy > 0.85, train_accuracy
    assert holdout_accuracy < 0.75, holdout_accuracy
    assert train_accuracy - holdout_accuracy > 0.15
    card = json.loads((out / "model_card.json").read_text())
    assert "holdout" in card["privacy"]["evaluation"] and card["privacy"]["holdout_fraction"] == 0.5


def test_without_a_holdout_the_metrics_say_training_rows(tmp_path):
    rng = np.random.default_rng(6)
    x, y = rng.uniform(0, 1, size=(120, len(FEATURES))), rng.integers(0, 2, 120)
    params = parameters_normalize(
        "dp-logistic-regression", {"target": "label", "epochs": 1}, schema=SCHEMA, epsilon_max=1.0, delta_max=1e-5
    )
    out = tmp_path / "out"
    spec = {
        "algorithm": "dp-logistic-regression",
        "parameters": params,
        "schema": SCHEMA,
        "data_file": str(_write(tmp_path, x, y)),
        "data_format": "csv",
        "output_dir": str(out),
        "public_rows": 120,
    }
    assert run_spec(spec, stream=io.StringIO()) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["evaluated_on"] == "training"
    accuracy = next(m for m in manifest["metrics"] if m["name"] == "dp_accuracy")
    assert "training rows" in accuracy["description"] and accuracy["evaluated_on"] == "training"
    card = json.loads((out / "model_card.json").read_text())
    assert any("public declared approximate row count (120)" in line for line in card["dp_and_public"])
    assert not any("treated as public" in line for line in card["dp_and_public"])
