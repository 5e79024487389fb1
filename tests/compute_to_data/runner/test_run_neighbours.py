"""The auditor's test at the runner (issue 12, findings 3, 5, 8): jobs on neighbouring datasets
(one row added, removed, changed, or malformed) with the same declared public row count release
the same everything except the DP outputs themselves: steps, sample rate, noise, epsilon spent,
the parameters hash, the artifact list and the sizes of the binary artifacts, every log line and
every progress event, and the model card minus its weights and metrics. A malformed row never fails
the job; neither does an empty file."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.run import run_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "min": 0, "max": 100},
        {"name": "dose", "type": "float", "min": 0, "max": 10},
        {"name": "site", "type": "categorical", "categories": ["north", "south", "east"]},
        {"name": "when", "type": "datetime", "min": "2020-01-01", "max": "2021-01-01"},
        {"name": "label", "type": "boolean"},
    ]
}
PUBLIC_ROWS = 250
HOLDOUT = {"fraction": 0.2, "key": "c4" * 32}
DP_METRIC_FIELDS = ("value",)
DP_CURVE_FIELDS = ("loss", "accuracy")


def _rows(n: int = 240) -> list[bytes]:
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        age, dose = int(rng.integers(20, 80)), float(rng.uniform(0, 10))
        zone = "+02:00" if i % 2 else ""
        label = "true" if dose / 10 + (age - 20) / 120 > 0.6 else "false"
        line = f"{age},{dose:.3f},{['north', 'south', 'east'][i % 3]},2020-{1 + i % 12:02d}-10T08:00:00{zone},{label}"
        out.append(line.encode())
    return out


def _neighbours() -> dict[str, bytes]:
    header = b"age,dose,site,when,label"
    rows = _rows()
    changed = list(rows)
    changed[7] = b"99,9.999,east,2020-12-31T23:59:59Z,false"
    variants = {
        "base": rows,
        "added": [*rows, b"50,5.0,south,2020-06-01,true"],
        "removed": rows[:7] + rows[8:],
        "changed": changed,
        # Not a number, bad UTF-8, an impossible date, a boolean that is not one.
        "malformed": [*rows, b"abc,\xff\xfe1,no\xc3rth,2021-02-29T99:00,maybe"],
        "too_large": [*rows, b"1e400,-1e999,,9999-99-99,"],
    }
    return {name: b"\n".join([header, *body]) + b"\n" for name, body in variants.items()}


def _run(data: bytes, folder: Path, spec: dict[str, Any], suffix: str = "csv") -> tuple[dict, list[dict], Path]:
    folder.mkdir()
    (folder / f"data.{suffix}").write_bytes(data)
    spec = {**spec, "data_file": str(folder / f"data.{suffix}"), "output_dir": str(folder / "out")}
    stream = io.StringIO()
    code = run_spec(spec, stream=stream, min_interval=0.0)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert code == 0, events[-1]
    return json.loads((folder / "out" / "manifest.json").read_text()), events, folder / "out"


def _public_view(manifest: dict, events: list[dict], out: Path) -> dict[str, Any]:
    """Everything a buyer sees that is not itself a DP output."""
    view = copy.deepcopy(manifest)
    for metric in view["metrics"]:
        if metric["source"] == "dp":
            for key in DP_METRIC_FIELDS:
                metric.pop(key)
    for point in view["curve"]:
        for key in DP_CURVE_FIELDS:
            point.pop(key)
    view["events"] = events
    sizes = {}
    for entry in manifest["artifacts"]:
        path = out / entry["name"]
        if path.suffix in (".safetensors", ".onnx"):
            sizes[entry["name"]] = path.stat().st_size
    view["binary_sizes"] = sizes
    card_path = out / "model_card.json"
    if card_path.exists():
        card = json.loads(card_path.read_text())
        card.pop("metrics")
        card.pop("curve")
        view["card"] = card
    stats_path = out / "statistics.json"
    if stats_path.exists():
        doc = json.loads(stats_path.read_text())
        for col in doc["columns"]:
            for key in ("count", "sum", "mean"):
                col.get(key, {}).pop("value", None)
            col.get("histogram", {}).pop("counts", None)
            col.get("quantiles", {}).pop("values", None)
        view["statistics"] = doc
    return view


def _training_spec() -> dict[str, Any]:
    params = parameters_normalize(
        "dp-logistic-regression",
        {"target": "label", "epochs": 2, "batch_size": 32},
        schema=SCHEMA,
        epsilon_max=1.0,
        delta_max=1e-5,
    )
    return {
        "algorithm": "dp-logistic-regression",
        "parameters": params,
        "schema": SCHEMA,
        "data_format": "csv",
        "public_rows": PUBLIC_ROWS,
        "holdout": HOLDOUT,
    }


def _statistics_spec() -> dict[str, Any]:
    params = parameters_normalize("dp-statistics", {"quantiles": [0.5]}, schema=SCHEMA, epsilon_max=1.0, delta_max=1e-5)
    return {
        "algorithm": "dp-statistics",
        "parameters": params,
        "schema": SCHEMA,
        "data_format": "csv",
        "public_rows": PUBLIC_ROWS,
    }


@pytest.mark.parametrize("make_spec", [_training_spec, _statistics_spec], ids=["training", "statistics"])
def test_neighbouring_datasets_release_the_same_public_fields(tmp_path, make_spec):
    spec = make_spec()
    views = {}
    for name, data in _neighbours().items():
        manifest, events, out = _run(data, tmp_path / name, spec)
        views[name] = _public_view(manifest, events, out)
        assert manifest["epsilon_spent"] == spec["parameters"]["epsilon"]
    base = views.pop("base")
    for name, view in views.items():
        assert view == base, name
    assert base["public_rows"] == PUBLIC_ROWS
    logs = [e["message"] for e in base["events"] if e["event"] == "log"]
    assert all("240" not in m and str(PUBLIC_ROWS) not in m for m in logs)


def test_an_empty_file_does_not_fail_and_releases_the_same_public_fields(tmp_path):
    for make_spec in (_training_spec, _statistics_spec):
        spec = make_spec()
        folder = tmp_path / spec["algorithm"]
        folder.mkdir()
        _, base_events, base_out = _run(_neighbours()["base"], folder / "base", spec)
        manifest, events, out = _run(b"age,dose,site,when,label\n", folder / "empty", spec)
        base_manifest = json.loads((base_out / "manifest.json").read_text())
        assert _public_view(manifest, events, out) == _public_view(base_manifest, base_events, base_out)


def _parquet(extra: list[dict[str, Any]]) -> bytes:
    rows = [
        {"age": 30 + i % 40, "dose": (i % 10) * 1.0, "site": "north", "label": bool(i % 2), "when": 1_590_000_000 + i}
        for i in range(200)
    ] + extra
    table = pa.table(
        {
            "age": pa.array([r["age"] for r in rows], pa.int64()),
            "dose": pa.array([r["dose"] for r in rows], pa.float64()),
            "site": pa.array([r["site"] for r in rows], pa.string()),
            "label": pa.array([r["label"] for r in rows], pa.bool_()),
            "when": pa.array([r["when"] for r in rows], pa.timestamp("s")),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _parquet_ns(value: int) -> bytes:
    table = pa.table(
        {
            "age": pa.array([40, 41], pa.int64()),
            "dose": pa.array([1.0, 2.0]),
            "site": pa.array(["north", "east"]),
            "label": pa.array([True, False]),
            "when": pa.array([1_590_000_000_000_000_000, value], pa.timestamp("ns", tz="UTC")),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_out_of_range_parquet_timestamps_do_not_fail_the_job(tmp_path):
    spec = {**_statistics_spec(), "data_format": "parquet"}
    year_200000 = (200_000 - 1970) * 365 * 86_400
    base = _public_view(*_run(_parquet([]), tmp_path / "base", spec, "parquet"))
    far = {"age": 50, "dose": 5.0, "site": "east", "label": True, "when": year_200000}
    assert _public_view(*_run(_parquet([far]), tmp_path / "far", spec, "parquet")) == base
    for i, edge in enumerate((2**63 - 1, -(2**63) + 1)):
        _run(_parquet_ns(edge), tmp_path / f"ns{i}", spec, "parquet")
    training = {**_training_spec(), "data_format": "parquet"}
    _run(_parquet([far]), tmp_path / "train", training, "parquet")
