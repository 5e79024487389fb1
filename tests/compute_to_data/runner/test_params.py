"""The runner's algorithm catalogue and parameter validation (``compute_to_data.runner.params``):
every bound refuses with a ParameterError naming the field, defaults are filled, and the same
input always normalises to the same dict. Also: the runner package stays importable by Django
(no torch in ``params``) and inside the sandbox (relative imports only, no Django)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from compute_to_data.runner.params import ALGORITHMS, ParameterError, algorithms_describe, parameters_normalize

REPO = Path(__file__).resolve().parents[3]
RUNNER_DIR = REPO / "compute_to_data" / "runner"

SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "nullable": False, "min": 18, "max": 90},
        {"name": "income", "type": "float", "nullable": True, "min": 0, "max": 250000.0},
        {"name": "smoker", "type": "boolean", "nullable": False},
        {"name": "region", "type": "categorical", "nullable": False, "categories": ["north", "south", "east"]},
        {"name": "visit", "type": "datetime", "nullable": True, "min": "2020-01-01", "max": "2024-12-31"},
        {"name": "notes", "type": "text", "nullable": True, "max_length": 200},
        {"name": "unbounded", "type": "float", "nullable": True},
        {"name": "churned", "type": "boolean", "nullable": False},
    ]
}
CAPS = {"epsilon_max": 3.0, "delta_max": 1e-5}


def normalize(algorithm: str, parameters: dict, **caps) -> dict:
    return parameters_normalize(algorithm, parameters, schema=SCHEMA, **{**CAPS, **caps})


def refused(algorithm: str, parameters: dict, **caps) -> ParameterError:
    with pytest.raises(ParameterError) as info:
        normalize(algorithm, parameters, **caps)
    return info.value


# --- the catalogue ---------------------------------------------------------------------------


def test_describe_lists_the_four_algorithms_as_json():
    described = algorithms_describe()
    assert [a["name"] for a in described] == [
        "dp-logistic-regression",
        "dp-mlp-classifier",
        "dp-linear-regression",
        "dp-statistics",
    ]
    assert json.loads(json.dumps(described)) == described
    kinds = {a["name"]: a["kind"] for a in described}
    assert kinds == {
        "dp-logistic-regression": "classifier",
        "dp-mlp-classifier": "classifier",
        "dp-linear-regression": "regressor",
        "dp-statistics": "statistics",
    }
    for algo in described:
        assert algo["title"] and algo["summary"] and algo["releases"]
        names = [p["name"] for p in algo["parameters"]]
        assert "seed" not in names  # a buyer-chosen seed would let them subtract the noise
        assert {"epsilon", "delta", "accountant"} <= set(names)
        for param in algo["parameters"]:
            assert {"name", "type", "default", "min", "max", "choices", "help"} <= set(param)
    mlp = next(a for a in described if a["name"] == "dp-mlp-classifier")
    hidden = next(p for p in mlp["parameters"] if p["name"] == "hidden_sizes")
    assert hidden["default"] == [64, 32] and hidden["min"] == 1 and hidden["max"] == 1024
    epochs = next(p for p in mlp["parameters"] if p["name"] == "epochs")
    assert (epochs["min"], epochs["max"], epochs["default"]) == (1, 50, 5)


# --- defaults and canonical form -------------------------------------------------------------


def test_logistic_defaults_are_filled():
    out = normalize("dp-logistic-regression", {"target": "churned"})
    assert out == {
        "accountant": "rdp",
        "batch_size": 256,
        "delta": 1e-5,
        "epochs": 5,
        "epsilon": 1.0,
        "features": ["age", "income", "smoker", "region", "visit"],  # no text, no unbounded, no target
        "learning_rate": 1.0,
        "max_grad_norm": 1.0,
        "private_metrics": True,
        "target": "churned",
    }
    assert list(out) == sorted(out)


def test_mlp_and_regression_defaults():
    mlp = normalize("dp-mlp-classifier", {"target": "region"})
    assert mlp["hidden_sizes"] == [64, 32] and mlp["learning_rate"] == 0.5
    assert "region" not in mlp["features"]
    reg = normalize("dp-linear-regression", {"target": "income"})
    assert reg["learning_rate"] == 0.2 and "hidden_sizes" not in reg


def test_epsilon_default_is_capped_by_the_dataset():
    assert normalize("dp-statistics", {}, epsilon_max=0.4)["epsilon"] == 0.4
    assert normalize("dp-statistics", {}, epsilon_max=3.0)["epsilon"] == 1.0
    assert normalize("dp-statistics", {}, delta_max=1e-6)["delta"] == 1e-6


def test_statistics_defaults_and_canonical_order():
    out = normalize("dp-statistics", {"statistics": ["quantiles", "count"], "quantiles": [0.9, 0.1]})
    assert out["columns"] == ["age", "income", "smoker", "region", "visit", "churned"]
    assert out["statistics"] == ["count", "quantiles"]
    assert out["quantiles"] == [0.1, 0.9]
    assert out["bins"] == 10
    assert normalize("dp-statistics", {})["statistics"] == ["count", "sum", "mean", "histogram", "quantiles"]


def test_normalisation_is_deterministic_and_keeps_feature_order():
    given = {
        "target": "churned",
        "features": ["visit", "age", "region"],
        "epochs": 7.0,  # a JSON float that is an integer is accepted as the integer
        "learning_rate": 1,  # an integer where a float is expected becomes a float
        "epsilon": 2,
    }
    first = normalize("dp-logistic-regression", dict(given))
    second = normalize("dp-logistic-regression", dict(reversed(list(given.items()))))
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["features"] == ["visit", "age", "region"]
    assert first["epochs"] == 7 and type(first["epochs"]) is int
    assert type(first["learning_rate"]) is float and type(first["epsilon"]) is float
    # Normalising a normalised dict changes nothing (the runner relies on it).
    assert normalize("dp-logistic-regression", first) == first


def test_explicit_null_means_default():
    assert normalize("dp-logistic-regression", {"target": "churned", "epochs": None})["epochs"] == 5


# --- refusals -----------------------------------------------------------------------------------


def test_unknown_algorithm():
    with pytest.raises(ParameterError) as info:
        parameters_normalize("dp-gan", {}, schema=SCHEMA, **CAPS)
    assert info.value.field == "algorithm"
    assert "dp-logistic-regression" in info.value.message


def test_unknown_parameter_names_the_field():
    error = refused("dp-logistic-regression", {"target": "churned", "seed": 3})
    assert error.field == "seed" and "Unknown parameter" in error.message
    # hidden_sizes belongs to the MLP only
    assert refused("dp-logistic-regression", {"target": "churned", "hidden_sizes": [4]}).field == "hidden_sizes"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("epochs", 0, "at least 1"),
        ("epochs", 51, "at most 50"),
        ("epochs", "5", "integer"),
        ("epochs", True, "integer"),
        ("epochs", 2.5, "integer"),
        ("batch_size", 7, "at least 8"),
        ("batch_size", 4097, "at most 4096"),
        ("learning_rate", 1e-6, "at least 1e-05"),
        ("learning_rate", 10.5, "at most 10"),
        ("learning_rate", "fast", "number"),
        ("learning_rate", float("nan"), "finite"),
        ("max_grad_norm", 0.001, "at least 0.01"),
        ("max_grad_norm", 101, "at most 100"),
        ("epsilon", 0, "greater than 0"),
        ("epsilon", -1, "greater than 0"),
        ("epsilon", 3.5, "at most 3 (the dataset's cap)"),
        ("delta", 0, "greater than 0"),
        ("delta", 2e-5, "at most 1e-05"),
        ("accountant", "gdp", "rdp, prv"),
        ("private_metrics", 1, "true or false"),
        ("features", [], "at least 1"),
        ("features", "age", "list"),
        ("features", ["age", "notes"], "free text"),
        ("features", ["age", "unbounded"], "min and max"),
        ("features", ["age", "age"], "twice"),
        ("features", ["age", "nope"], "not in the schema"),
        ("features", ["age", "churned"], "target"),
        ("features", [f"c{i}" for i in range(201)], "at most 200"),
    ],
)
def test_training_bounds(field, value, fragment):
    error = refused("dp-logistic-regression", {"target": "churned", field: value})
    assert error.field == field
    assert fragment in error.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "at least 1"),
        ([8, 8, 8, 8, 8], "at most 4"),
        ([0], "at least 1"),
        ([1025], "at most 1024"),
        ([8.5], "integer"),
    ],
)
def test_hidden_sizes_bounds(value, fragment):
    error = refused("dp-mlp-classifier", {"target": "churned", "hidden_sizes": value})
    assert error.field == "hidden_sizes" and fragment in error.message


@pytest.mark.parametrize(
    ("algorithm", "target", "fragment"),
    [
        ("dp-logistic-regression", None, "required"),
        ("dp-logistic-regression", "nope", "column of the schema"),
        ("dp-logistic-regression", "income", "categorical, boolean or integer"),
        ("dp-mlp-classifier", "notes", "categorical, boolean or integer"),
        ("dp-linear-regression", "region", "integer or float"),
        ("dp-linear-regression", "unbounded", "min and a max"),
    ],
)
def test_target_must_fit_the_algorithm(algorithm, target, fragment):
    params = {} if target is None else {"target": target}
    error = refused(algorithm, params)
    assert error.field == "target" and fragment in error.message


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("bins", 1, "at least 2"),
        ("bins", 101, "at most 100"),
        ("quantiles", [0.0], "strictly between 0 and 1"),
        ("quantiles", [1], "strictly between 0 and 1"),
        ("quantiles", [0.5, 0.5], "twice"),
        ("quantiles", [0.1] * 10, "at most 9"),
        ("quantiles", [], "at least 1"),
        ("statistics", ["median"], "one of"),
        ("statistics", ["count", "count"], "twice"),
        ("statistics", [], "at least 1"),
        ("columns", ["notes"], "free text"),
        ("columns", ["ghost"], "not in the schema"),
    ],
)
def test_statistics_bounds(field, value, fragment):
    error = refused("dp-statistics", {field: value})
    assert error.field == field and fragment in error.message


def test_no_budget_left_is_refused():
    error = refused("dp-statistics", {}, epsilon_max=0.0)
    assert error.field == "epsilon" and "budget" in error.message


def test_bad_schema_is_refused():
    with pytest.raises(ParameterError) as info:
        parameters_normalize("dp-statistics", {}, schema={"columns": "x"}, **CAPS)
    assert info.value.field == "schema"


def test_one_hot_width_is_bounded():
    wide = {
        "columns": [
            {"name": "y", "type": "boolean"},
            *({"name": f"c{i}", "type": "categorical", "categories": [f"v{j}" for j in range(600)]} for i in range(20)),
        ]
    }
    with pytest.raises(ParameterError) as info:
        parameters_normalize("dp-logistic-regression", {"target": "y"}, schema=wide, **CAPS)
    assert info.value.field == "features" and "10000" in info.value.message


def test_every_algorithm_is_normalisable_with_defaults():
    for name, spec in ALGORITHMS.items():
        params = {} if spec.kind == "statistics" else {"target": "income" if spec.kind == "regressor" else "churned"}
        assert normalize(name, params)["epsilon"] == 1.0


# --- packaging rules ----------------------------------------------------------------------------


def test_params_import_pulls_no_torch_numpy_or_django():
    code = (
        "import sys; import compute_to_data.runner; import compute_to_data.runner.params; "
        "bad = [m for m in ('torch', 'numpy', 'django', 'pyarrow', 'opacus') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_runner_uses_relative_imports_only_and_never_django():
    for path in sorted(RUNNER_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in ("django", "compute_to_data", "marketplace", "chain", "config"), (path.name, name)
