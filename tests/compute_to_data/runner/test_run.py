"""The DP runner end to end, without the sandbox: in-process (``run_spec``) and as
``python -m dp_runner spec.json`` (a folder holding a ``dp_runner`` symlink as working directory,
or on PYTHONPATH), on scikit-learn's breast cancer and diabetes sets with public schemas whose
bounds are the feature ranges rounded outward.

What a buyer would notice: the models beat trivial baselines on held-out rows the runner never
saw (evaluated here, through the ONNX file and the model card's preprocessing spec only), the
ONNX model agrees with the weights, the statistics are near the truth, stdout is JSON lines only,
errors end with an error event and exit status 2, and no cell value ever reaches stdout/stderr."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes

from compute_to_data.runner.events import Events
from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.run import run_spec
from tests.compute_to_data.runner.support import torch_model_from_weights

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

REPO = Path(__file__).resolve().parents[3]
RUNNER_DIR = REPO / "compute_to_data" / "runner"
EVENT_KEYS = {
    "progress": {"event", "phase", "epoch", "epochs", "step", "steps", "epsilon"},
    "log": {"event", "message"},
    "error": {"event", "code", "message"},
}


# --- data sets ------------------------------------------------------------------------------------


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def cancer(tmp_path_factory) -> dict:
    """Breast cancer split 80/20 (fixed permutation), as CSV with a declared schema."""
    data = load_breast_cancer()
    x, y = data.data, data.target
    names = [n.replace(" ", "_") for n in data.feature_names]
    perm = np.random.default_rng(0).permutation(len(x))
    train, test = perm[:455], perm[455:]
    labels = ["malignant", "benign"]
    folder = tmp_path_factory.mktemp("cancer")
    header = [*names, "diagnosis"]
    for name, idx in (("train.csv", train), ("test.csv", test)):
        _write_csv(folder / name, header, [[f"{v:.6g}" for v in x[i]] + [labels[y[i]]] for i in idx])
    columns = [
        {
            "name": n,
            "type": "float",
            "nullable": False,
            "min": math.floor(x[:, j].min()),
            "max": math.ceil(x[:, j].max()),
        }
        for j, n in enumerate(names)
    ]
    columns.append({"name": "diagnosis", "type": "categorical", "nullable": False, "categories": labels})
    return {
        "folder": folder,
        "schema": {"columns": columns},
        "names": names,
        "x": x,
        "y": y,
        "train": train,
        "test": test,
        "labels": labels,
    }


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory) -> dict:
    data = load_diabetes(scaled=False)
    x, y = data.data, data.target
    names = list(data.feature_names)
    perm = np.random.default_rng(0).permutation(len(x))
    train, test = perm[:354], perm[354:]
    folder = tmp_path_factory.mktemp("diabetes")
    header = [*names, "progression"]
    for name, idx in (("train.csv", train), ("test.csv", test)):
        _write_csv(folder / name, header, [[f"{v:.6g}" for v in x[i]] + [f"{y[i]:g}"] for i in idx])
    columns = [
        {
            "name": n,
            "type": "float",
            "nullable": False,
            "min": math.floor(x[:, j].min()),
            "max": math.ceil(x[:, j].max()),
        }
        for j, n in enumerate(names)
    ]
    columns.append({"name": "progression", "type": "float", "nullable": False, "min": 0, "max": 400})
    return {"folder": folder, "schema": {"columns": columns}, "x": x, "y": y, "train": train, "test": test}


def make_spec(ds: dict, algorithm: str, given: dict, out: Path, *, eval_file: bool = True) -> dict:
    params = parameters_normalize(algorithm, given, schema=ds["schema"], epsilon_max=1.0, delta_max=1e-5)
    return {
        "algorithm": algorithm,
        "parameters": params,
        "schema": ds["schema"],
        "data_file": str(ds["folder"] / "train.csv"),
        "data_format": "csv",
        "eval_file": str(ds["folder"] / "test.csv") if eval_file else None,
        "output_dir": str(out),
        "threads": 1,
        "public_rows": len(ds["train"]),
    }


def run_in_process(spec: dict, seed: int | None = None) -> tuple[int, list[dict]]:
    """``seed`` (test-only) fixes the runner's generator where a test checks utility, which is
    random at a given epsilon; privacy tests leave it None, as production does."""
    stream = io.StringIO()
    code = run_spec(spec, stream=stream, seed=seed)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


# --- reproducing the model from its artifacts only ---------------------------------------------


def features_from_card(card: dict, x: np.ndarray, names: list[str]) -> np.ndarray:
    """The ONNX input for raw numeric rows, built from the model card's preprocessing spec."""
    width = card["architecture"]["input_width"]
    out = np.zeros((len(x), width), dtype=np.float32)
    for feat in card["preprocessing"]["features"]:
        assert feat["kind"] == "numeric"
        col = x[:, names.index(feat["column"])]
        low, high = feat["min"], feat["max"]
        out[:, feat["output_indices"][0]] = (np.clip(col, low, high) - low) / (high - low)
    return out


def onnx_outputs(path: Path, features: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"features": features})[0]


def assert_protocol(events: list[dict]) -> None:
    for event in events:
        assert set(event) == EVENT_KEYS[event["event"]], event


# --- classifiers on breast cancer -------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "given"),
    [
        ("dp-logistic-regression", {"batch_size": 64, "epochs": 10}),
        ("dp-mlp-classifier", {"batch_size": 64, "epochs": 20}),
    ],
)
def test_classifier_beats_majority_on_held_out_rows(cancer, tmp_path, algorithm, given):
    spec = make_spec(cancer, algorithm, {"target": "diagnosis", **given}, tmp_path)
    assert spec["parameters"]["epsilon"] == 1.0
    code, events = run_in_process(spec, seed=0)
    assert code == 0, events[-1]
    assert_protocol(events)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert manifest["epsilon_spent"] == 1.0 and manifest["epsilon_accounted"] <= 1.0
    assert {a["name"] for a in manifest["artifacts"]} == {
        "model.safetensors",
        "model.onnx",
        "model_card.json",
        "model_card.md",
    }
    assert all((tmp_path / a["name"]).is_file() for a in manifest["artifacts"])

    # Held-out accuracy, computed here from the ONNX file and the card's preprocessing spec.
    x_test, y_test = cancer["x"][cancer["test"]], cancer["y"][cancer["test"]]
    features = features_from_card(card, x_test, cancer["names"])
    probabilities = onnx_outputs(tmp_path / "model.onnx", features)
    assert probabilities.shape == (len(x_test), 2)
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-6)
    # Class order is the declared category order: malignant (sklearn 0), benign (sklearn 1).
    assert card["target"]["classes"] == ["malignant", "benign"]
    accuracy = float((probabilities.argmax(1) == y_test).mean())
    majority = max(float(y_test.mean()), 1 - float(y_test.mean()))
    assert accuracy > majority + 0.1, (accuracy, majority)

    # The runner's public metrics on the eval file are the same computation.
    metrics = {m["name"]: m for m in manifest["metrics"]}
    assert metrics["eval_accuracy"]["source"] == "public"
    assert metrics["eval_accuracy"]["value"] == pytest.approx(accuracy, abs=1e-9)
    assert metrics["eval_majority_baseline"]["value"] == pytest.approx(majority)
    assert metrics["dp_accuracy"]["source"] == "dp" and 0 <= metrics["dp_accuracy"]["value"] <= 1

    # The ONNX model and the safetensors weights agree.
    model = torch_model_from_weights(tmp_path / "model.safetensors")
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(features))[:, 0]).numpy()
    assert np.abs(np.stack([1 - p, p], axis=1) - probabilities).max() <= 1e-5

    # The curve: one entry per epoch, DP loss and accuracy, epsilon growing to the spent one.
    curve = manifest["curve"]
    assert [c["epoch"] for c in curve] == list(range(1, spec["parameters"]["epochs"] + 1))
    assert all(c["loss"] is not None and c["accuracy"] is not None for c in curve)
    assert [c["epsilon"] for c in curve] == sorted(c["epsilon"] for c in curve)
    assert curve[-1]["epsilon"] == pytest.approx(manifest["epsilon_accounted"], rel=1e-6)
    assert card["privacy"]["epsilon_accounted"] == manifest["epsilon_accounted"]
    assert len(manifest["epsilon_curve"]) <= 200 and manifest["epsilon_curve"][-1][0] == manifest["steps"]


def test_multiclass_mlp_onnx_matches_torch(tmp_path):
    rng = np.random.default_rng(3)
    n = 600
    x = rng.uniform(0, 10, size=(n, 3))
    colour = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x[:, 0] > 6.5, "high", np.where(x[:, 0] > 3.5, "mid", "low"))
    lines = ["a,b,c,colour,label"] + [
        f"{x[i, 0]:.4f},{x[i, 1]:.4f},{x[i, 2]:.4f},{colour[i]},{label[i]}" for i in range(n)
    ]
    data = tmp_path / "data.csv"
    data.write_text("\n".join(lines) + "\n")
    schema = {
        "columns": [
            {"name": "a", "type": "float", "min": 0, "max": 10},
            {"name": "b", "type": "float", "min": 0, "max": 10},
            {"name": "c", "type": "float", "min": 0, "max": 10},
            {"name": "colour", "type": "categorical", "categories": ["red", "green", "blue"]},
            {"name": "label", "type": "categorical", "categories": ["low", "mid", "high"]},
        ]
    }
    params = parameters_normalize(
        "dp-mlp-classifier",
        {"target": "label", "hidden_sizes": [16, 8], "epochs": 3, "batch_size": 64, "epsilon": 2.0},
        schema=schema,
        epsilon_max=2.0,
        delta_max=1e-5,
    )
    out = tmp_path / "out"
    spec = {"algorithm": "dp-mlp-classifier", "parameters": params, "schema": schema, "data_file": str(data),
            "data_format": "csv", "output_dir": str(out), "public_rows": 600}  # fmt: skip
    code, events = run_in_process(spec)
    assert code == 0, events[-1]
    card = json.loads((out / "model_card.json").read_text())
    assert card["architecture"]["input_width"] == 6  # 3 numeric + 3 one-hot
    colour_spec = next(f for f in card["preprocessing"]["features"] if f["column"] == "colour")
    assert colour_spec["output_indices"] == [3, 4, 5] and colour_spec["categories"] == ["red", "green", "blue"]
    features = np.random.default_rng(4).uniform(0, 1, size=(50, 6)).astype(np.float32)
    probabilities = onnx_outputs(out / "model.onnx", features)
    model = torch_model_from_weights(out / "model.safetensors")
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(features)), dim=1).numpy()
    assert probabilities.shape == (50, 3)
    assert np.abs(probabilities - expected).max() <= 1e-5


# --- regression on diabetes ---------------------------------------------------------------------


def test_linear_regression_beats_the_mean_on_held_out_rows(diabetes, tmp_path):
    spec = make_spec(
        diabetes,
        "dp-linear-regression",
        {"target": "progression", "batch_size": 128, "epochs": 10, "learning_rate": 0.2},
        tmp_path,
    )
    code, events = run_in_process(spec, seed=0)
    assert code == 0, events[-1]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert manifest["epsilon_spent"] == 1.0
    x_test, y_test = diabetes["x"][diabetes["test"]], diabetes["y"][diabetes["test"]]
    names = [c["name"] for c in diabetes["schema"]["columns"]][:-1]
    features = features_from_card(card, x_test, names)
    predictions = onnx_outputs(tmp_path / "model.onnx", features)[:, 0]  # unscaled, target units
    mse = float(np.mean((predictions - y_test) ** 2))
    baseline = float(np.mean((y_test - diabetes["y"][diabetes["train"]].mean()) ** 2))
    assert mse < baseline, (mse, baseline)
    assert np.all((predictions >= 0) & (predictions <= 400))  # clipped to the declared range
    metrics = {m["name"]: m["value"] for m in manifest["metrics"]}
    assert metrics["eval_mse"] == pytest.approx(mse, rel=1e-5)
    # The DP error curve is noisy on 354 rows but always finite and within its clipping bound.
    losses = [c["loss"] for c in manifest["curve"]]
    assert len(losses) == 10 and all(0.0 <= v <= 0.25 for v in losses)
    assert all(c["accuracy"] is None for c in manifest["curve"])
    # ONNX against the weights (unscaled with the declared bounds, clipped to them).
    model = torch_model_from_weights(tmp_path / "model.safetensors")
    with torch.no_grad():
        scaled = model(torch.from_numpy(features))[:, 0].clamp(0, 1).numpy()
    assert np.abs(scaled * 400 - predictions).max() <= 1e-5 * 400


# --- statistics ---------------------------------------------------------------------------------


def test_statistics_are_near_the_truth(cancer, tmp_path):
    columns = ["mean_radius", "mean_texture", "worst_area", "diagnosis"]
    spec = make_spec(cancer, "dp-statistics", {"columns": columns}, tmp_path, eval_file=False)
    code, events = run_in_process(spec)
    assert code == 0, events[-1]
    doc = json.loads((tmp_path / "statistics.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["epsilon_spent"] == 1.0 and doc["epsilon_spent"] == manifest["epsilon_spent"]
    assert manifest["epsilon_accounted"] <= 1.0 and manifest["accountant"] == "zcdp"
    assert {a["name"] for a in manifest["artifacts"]} == {"statistics.json", "statistics.md"}
    by_name = {c["name"]: c for c in doc["columns"]}
    x = cancer["x"][cancer["train"]]
    n = len(x)
    for name in columns[:3]:
        col = by_name[name]
        true = x[:, cancer["names"].index(name)]
        low, high = col["bounds"]["min"], col["bounds"]["max"]
        assert col["bounds"]["source"] == "public" and col["count"]["source"] == "dp"
        assert abs(col["count"]["value"] - n) <= max(5 * col["count"]["noise_std"], 0.1 * n)
        assert abs(col["mean"]["value"] - true.mean()) <= 0.1 * (high - low)
        assert abs(col["sum"]["value"] - true.sum()) <= 0.2 * abs(true.sum()) + 5 * col["sum"]["noise_std"]
        assert col["histogram"]["bins_source"] == "public" and len(col["histogram"]["counts"]) == 10
        assert all(c >= 0 and isinstance(c, int) for c in col["histogram"]["counts"])
        assert col["histogram"]["edges"][0] == low and col["histogram"]["edges"][-1] == high
        median = col["quantiles"]["values"][col["quantiles"]["levels"].index(0.5)]
        assert abs(median - np.median(true)) <= 0.15 * (high - low)
    diag = by_name["diagnosis"]
    assert diag["histogram"]["categories"] == ["malignant", "benign"]
    benign = int(cancer["y"][cancer["train"]].sum())
    assert abs(diag["histogram"]["counts"][1] - benign) <= 0.15 * n
    assert "mean" not in diag and "quantiles" not in diag  # not applicable to a categorical column
    assert (tmp_path / "statistics.md").read_text().startswith("# DP summary statistics")


def test_parquet_input(cancer, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = cancer["x"][cancer["train"]]
    table = pa.table(
        {
            **{name: x[:, j] for j, name in enumerate(cancer["names"])},
            "diagnosis": [cancer["labels"][v] for v in cancer["y"][cancer["train"]]],
        }
    )
    pq.write_table(table, tmp_path / "train.parquet")
    spec = make_spec(cancer, "dp-logistic-regression", {"target": "diagnosis", "epochs": 2}, tmp_path / "out")
    spec.update(data_file=str(tmp_path / "train.parquet"), data_format="parquet", eval_file=None)
    code, events = run_in_process(spec)
    assert code == 0, events[-1]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["epsilon_spent"] == 1.0


# --- errors ---------------------------------------------------------------------------------------


def test_parameters_not_in_normal_form_are_refused(cancer, tmp_path):
    spec = make_spec(cancer, "dp-logistic-regression", {"target": "diagnosis"}, tmp_path)
    del spec["parameters"]["epochs"]  # the runner re-normalises and compares
    code, events = run_in_process(spec)
    assert code == 2
    assert events[-1]["event"] == "error" and events[-1]["code"] == "invalid_parameters"
    assert not (tmp_path / "manifest.json").exists()


def test_missing_column_is_invalid_data(cancer, tmp_path):
    schema = json.loads(json.dumps(cancer["schema"]))
    schema["columns"].append({"name": "ghost", "type": "float", "min": 0, "max": 1})
    params = parameters_normalize(
        "dp-statistics", {"columns": ["ghost"]}, schema=schema, epsilon_max=1.0, delta_max=1e-5
    )
    spec = make_spec(cancer, "dp-statistics", {}, tmp_path, eval_file=False)
    spec.update(parameters=params, schema=schema)
    code, events = run_in_process(spec)
    assert code == 2
    assert events[-1] == {"event": "error", "code": "invalid_data", "message": events[-1]["message"]}
    assert "'ghost'" in events[-1]["message"]


def test_unexpected_exception_reports_a_fixed_message(cancer, tmp_path, monkeypatch, capsys):
    from compute_to_data.runner import train

    def boom(**kwargs):
        raise ValueError("row 17 holds ZZSECRET-PLANTED")

    monkeypatch.setattr(train, "train", boom)
    spec = make_spec(cancer, "dp-logistic-regression", {"target": "diagnosis"}, tmp_path)
    code, events = run_in_process(spec)
    assert code == 2
    error = events[-1]
    assert error == {"event": "error", "code": "internal", "message": "Internal error in the runner."}
    assert "ZZSECRET" not in json.dumps(events)
    err = capsys.readouterr().err  # the operators get the type and place, still no data
    assert "ValueError at run.py:" in err and "ZZSECRET" not in err


def test_progress_events_are_rate_limited():
    now = [0.0]
    stream = io.StringIO()
    events = Events(stream, min_interval=0.2, clock=lambda: now[0])
    for step in range(100):
        now[0] += 0.01  # one second in all
        events.progress("training", epoch=1, epochs=1, step=step, steps=100, epsilon=0.1)
    events.progress("training", epoch=1, epochs=1, step=100, steps=100, epsilon=0.1, force=True)
    lines = stream.getvalue().splitlines()
    assert 5 <= len(lines) <= 7
    assert json.loads(lines[-1])["step"] == 100


# --- as a subprocess: python -m dp_runner --------------------------------------------------------


def runner_home(tmp_path: Path) -> Path:
    home = tmp_path / "runner_home"
    home.mkdir()
    (home / "dp_runner").symlink_to(RUNNER_DIR, target_is_directory=True)
    return home


def run_module(spec: dict, tmp_path: Path, *, via: str = "cwd") -> subprocess.CompletedProcess:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    home = runner_home(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    cwd = home
    if via == "pythonpath":
        env["PYTHONPATH"] = str(home)
        cwd = tmp_path
    return subprocess.run(
        [sys.executable, "-m", "dp_runner", str(spec_path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def parse_stdout(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    assert lines, "no output"
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(e, dict) for e in events)
    assert_protocol(events)
    return events


def test_module_run_from_its_folder(cancer, tmp_path):
    out = tmp_path / "out"
    spec = make_spec(cancer, "dp-logistic-regression", {"target": "diagnosis", "epochs": 3}, out)
    done = run_module(spec, tmp_path, via="cwd")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    events = parse_stdout(done.stdout)
    assert {e["event"] for e in events} <= {"progress", "log"}
    phases = [e["phase"] for e in events if e["event"] == "progress"]
    assert phases[0] == "loading" and "training" in phases and phases[-1] == "writing"
    epoch_ends = [
        e
        for e in events
        if e["event"] == "progress" and e["phase"] == "training" and e["step"] % (e["steps"] // 3) == 0
    ]
    assert len(epoch_ends) >= 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) >= {
        "algorithm",
        "epsilon_spent",
        "delta",
        "accountant",
        "noise_multiplier",
        "sample_rate",
        "steps",
        "artifacts",
        "metrics",
        "curve",
        "epsilon_curve",
    }
    assert manifest["epsilon_spent"] <= spec["parameters"]["epsilon"]
    assert all((out / a["name"]).stat().st_size > 0 for a in manifest["artifacts"])
    assert {m["source"] for m in manifest["metrics"]} == {"dp", "public"}


def test_module_run_on_pythonpath_and_bad_spec(cancer, tmp_path):
    out = tmp_path / "out"
    spec = make_spec(cancer, "dp-statistics", {"columns": ["mean_radius"]}, out, eval_file=False)
    done = run_module(spec, tmp_path, via="pythonpath")
    assert done.returncode == 0, done.stderr[-2000:]
    parse_stdout(done.stdout)
    assert (out / "statistics.json").is_file() and (out / "manifest.json").is_file()

    bad = dict(spec, algorithm="dp-gan")
    other = tmp_path / "bad"
    other.mkdir()
    done = run_module(bad, other, via="pythonpath")
    assert done.returncode == 2
    events = parse_stdout(done.stdout)
    assert events[-1]["event"] == "error" and events[-1]["code"] == "invalid_parameters"


# --- nothing from the data leaks ------------------------------------------------------------------

SECRET = "ZZSECRET-PLANTED-4242"
IMPOSSIBLE = "987654321.125"


@pytest.fixture
def leaky(tmp_path) -> dict:
    """A dataset whose cells carry a distinctive string (undeclared category, bad number, bad
    boolean, bad date) and an impossible number; a schema that declares none of them."""
    rng = np.random.default_rng(9)
    rows = []
    for i in range(300):
        amount = f"{rng.uniform(0, 100):.2f}"
        region = ["north", "south"][i % 2]
        flag = "true" if rng.random() < 0.5 else "false"
        when = f"2022-0{1 + i % 9}-0{1 + i % 9}"
        if i == 17:
            region = SECRET
        if i == 18:
            amount = IMPOSSIBLE
        if i == 19:
            amount = SECRET
        if i == 20:
            flag = SECRET
        if i == 21:
            when = SECRET
        label = "yes" if float(amount if i not in (19,) else 0) > 50 else "no"
        rows.append([amount, region, flag, when, label])
    path = tmp_path / "leaky.csv"
    _write_csv(path, ["amount", "region", "flag", "when", "label"], rows)
    schema = {
        "columns": [
            {"name": "amount", "type": "float", "min": 0, "max": 100},
            {"name": "region", "type": "categorical", "categories": ["north", "south"]},
            {"name": "flag", "type": "boolean"},
            {"name": "when", "type": "datetime", "min": "2022-01-01", "max": "2022-12-31"},
            {"name": "label", "type": "categorical", "categories": ["no", "yes"]},
        ]
    }
    return {"path": path, "schema": schema}


def leaky_spec(leaky: dict, algorithm: str, params: dict, out: Path) -> dict:
    return {
        "algorithm": algorithm,
        "parameters": params,
        "schema": leaky["schema"],
        "data_file": str(leaky["path"]),
        "data_format": "csv",
        "output_dir": str(out),
        "public_rows": 300,
    }


def assert_no_leak(done: subprocess.CompletedProcess) -> None:
    for text in (done.stdout, done.stderr):
        assert SECRET not in text and "ZZSECRET" not in text
        assert "987654321" not in text


@pytest.mark.parametrize(
    ("algorithm", "given"),
    [("dp-logistic-regression", {"target": "label", "epochs": 2}), ("dp-statistics", {})],
)
def test_no_cell_value_reaches_stdout_or_stderr(leaky, tmp_path, algorithm, given):
    params = parameters_normalize(algorithm, given, schema=leaky["schema"], epsilon_max=1.0, delta_max=1e-5)
    spec = leaky_spec(leaky, algorithm, params, tmp_path / "out")
    done = run_module(spec, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    parse_stdout(done.stdout)
    assert_no_leak(done)
    # Nor into the artifacts' text (the card and the statistics hold only schema values).
    for path in (tmp_path / "out").iterdir():
        if path.suffix in (".json", ".md"):
            assert SECRET not in path.read_text() and "987654321" not in path.read_text()


def test_a_ragged_row_is_skipped_without_quoting_it(leaky, tmp_path):
    # A ragged row would make pyarrow's CSV parser fail with a message quoting the row: one row
    # must not decide the job's outcome, so the parser skips it.
    text = leaky["path"].read_text().splitlines()
    text[40] = text[40] + f",{SECRET},{IMPOSSIBLE}"
    leaky["path"].write_text("\n".join(text) + "\n")
    params = parameters_normalize("dp-statistics", {}, schema=leaky["schema"], epsilon_max=1.0, delta_max=1e-5)
    spec = leaky_spec(leaky, "dp-statistics", params, tmp_path / "out")
    done = run_module(spec, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    parse_stdout(done.stdout)
    assert_no_leak(done)


def test_an_unreadable_file_is_invalid_data_with_a_fixed_message(leaky, tmp_path):
    leaky["path"].write_bytes(b"PAR1" + SECRET.encode() * 50)  # not Parquet, though it claims to be
    params = parameters_normalize("dp-statistics", {}, schema=leaky["schema"], epsilon_max=1.0, delta_max=1e-5)
    spec = dict(leaky_spec(leaky, "dp-statistics", params, tmp_path / "out"), data_format="parquet")
    code, events = run_in_process(spec)
    assert code == 2
    assert events[-1] == {
        "event": "error",
        "code": "invalid_data",
        "message": "The data file could not be read as PARQUET.",
    }
    assert SECRET not in json.dumps(events)
