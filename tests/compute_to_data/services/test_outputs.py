"""The worker's checks of what a run wrote (``services.outputs``): the trusted runner's real
outputs pass for every algorithm, and each kind of file that is not what the algorithm releases (the
raw data under a model's name, a tensor too many, smuggled metadata, JSON with NaN or rows in its
curves, an oversized report) is refused."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from compute_to_data.runner.params import parameters_normalize
from compute_to_data.services import outputs
from tests.compute_to_data.services.outputs_support import runner_outputs
from tests.compute_to_data.support import training_csv

SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "min": 18, "max": 90},
        {"name": "dose", "type": "float", "min": 0, "max": 10},
        {"name": "site", "type": "categorical", "categories": ["north", "south", "east"]},
        {"name": "score", "type": "float", "min": 0, "max": 100},
        {"name": "label", "type": "boolean"},
    ]
}
GIVEN = {
    "dp-logistic-regression": {"target": "label", "epochs": 2},
    "dp-mlp-classifier": {"target": "site", "epochs": 2, "hidden_sizes": [8, 4]},
    "dp-linear-regression": {"target": "score", "epochs": 2},
    "dp-statistics": {},
}
PUBLIC_ROWS = 400


def _params(algorithm: str) -> dict:
    return parameters_normalize(algorithm, GIVEN[algorithm], schema=SCHEMA, epsilon_max=1.0, delta_max=1e-5)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    """The trusted runner's outputs, one folder per algorithm (made once for the module)."""
    folders = {}
    for algorithm in GIVEN:
        out = tmp_path_factory.mktemp(algorithm)
        runner_outputs(
            out,
            algorithm=algorithm,
            parameters=_params(algorithm),
            schema=SCHEMA,
            data=training_csv(),
            public_rows=PUBLIC_ROWS,
        )
        folders[algorithm] = out
    return folders


@pytest.fixture
def folder(released, tmp_path):
    """A copy of one algorithm's outputs to tamper with: ``folder("dp-mlp-classifier")``."""

    def copy(algorithm: str) -> Path:
        target = tmp_path / algorithm
        shutil.copytree(released[algorithm], target)
        return target

    return copy


def _release(algorithm: str) -> outputs.Release:
    return outputs.release_expected(
        algorithm=algorithm, parameters=_params(algorithm), schema=SCHEMA, public_rows=PUBLIC_ROWS, epsilon=1.0
    )


def check_all(folder: Path, algorithm: str) -> outputs.Checked:
    """Every check the worker runs before publishing, in its order."""
    release = _release(algorithm)
    checked = outputs.Checked()
    with (folder / outputs.MANIFEST).open("rb") as fh:
        outputs.manifest_check(fh, release, checked)
    for artifact in release.artifacts:
        path = folder / artifact.name
        with path.open("rb") as fh:
            outputs.artifact_check(artifact, fh, path.stat().st_size, release, checked)
    return checked


def _edit_json(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _refused(folder: Path, algorithm: str, match: str) -> None:
    with pytest.raises(outputs.OutputRejected, match=match):
        check_all(folder, algorithm)


# --- the trusted runner's own outputs -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(GIVEN))
def test_the_trusted_runners_outputs_pass_for_every_algorithm(released, algorithm):
    checked = check_all(released[algorithm], algorithm)
    if algorithm != "dp-statistics":
        assert sorted(checked.tensors) == sorted(outputs._tensor_shapes(_release(algorithm)))


def test_the_architecture_is_computed_from_the_public_parameters():
    # age, dose, score, label (one input each) -> 8 -> 4 -> the three sites.
    assert _release("dp-mlp-classifier").sizes == (4, 8, 4, 3)
    # age, dose, site (three one-hot inputs), score -> one logit for two classes.
    assert _release("dp-logistic-regression").sizes == (6, 1)
    # age, dose, site (three), label -> the score.
    assert _release("dp-linear-regression").sizes == (6, 1)


# --- safetensors -----------------------------------------------------------------------------------


def _safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    from compute_to_data.runner.artifacts import safetensors_bytes

    return safetensors_bytes(tensors, metadata)


def _weights(algorithm: str) -> dict[str, np.ndarray]:
    shapes = outputs._tensor_shapes(_release(algorithm))
    return {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()}


def test_the_raw_dataset_shipped_as_the_weights_is_refused(folder):
    out = folder("dp-logistic-regression")
    (out / "model.safetensors").write_bytes(training_csv())
    _refused(out, "dp-logistic-regression", "header of the wrong size")


def test_the_raw_dataset_behind_a_valid_header_is_refused(folder):
    out = folder("dp-logistic-regression")
    path = out / "model.safetensors"
    path.write_bytes(path.read_bytes() + training_csv())
    _refused(out, "dp-logistic-regression", "other bytes than their tensors")


def test_weights_of_another_shape_are_refused(folder):
    out = folder("dp-mlp-classifier")
    release = _release("dp-mlp-classifier")
    tensors = _weights("dp-mlp-classifier")
    tensors["layers.0.weight"] = np.zeros((400, 4), dtype=np.float32)  # room for rows
    (out / "model.safetensors").write_bytes(_safetensors(tensors, outputs.weights_metadata(release)))
    _refused(out, "dp-mlp-classifier", "wrong size|not the architecture's")


def test_a_tensor_too_many_is_refused(folder):
    out = folder("dp-mlp-classifier")
    release = _release("dp-mlp-classifier")
    tensors = {**_weights("dp-mlp-classifier"), "rows": np.zeros((2,), dtype=np.float32)}
    (out / "model.safetensors").write_bytes(_safetensors(tensors, outputs.weights_metadata(release)))
    _refused(out, "dp-mlp-classifier", "wrong size|wrong keys")


def test_float64_weights_are_refused(folder):
    out = folder("dp-linear-regression")
    release = _release("dp-linear-regression")
    tensors = {name: array.astype(np.float64) for name, array in _weights("dp-linear-regression").items()}
    (out / "model.safetensors").write_bytes(_safetensors(tensors, outputs.weights_metadata(release)))
    _refused(out, "dp-linear-regression", "wrong size|not the architecture's")


def test_rows_smuggled_in_the_metadata_are_refused(folder):
    out = folder("dp-logistic-regression")
    release = _release("dp-logistic-regression")
    metadata = {**outputs.weights_metadata(release), "output": "age,dose\n41,3.2"}
    (out / "model.safetensors").write_bytes(_safetensors(_weights("dp-logistic-regression"), metadata))
    _refused(out, "dp-logistic-regression", "other metadata")


def test_a_header_with_a_duplicate_key_is_refused(folder):
    out = folder("dp-linear-regression")
    path = out / "model.safetensors"
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + length].decode()
    forged = header.replace('{"__metadata__"', '{"layers.0.bias":{},"__metadata__"', 1)[:length]
    path.write_bytes(raw[:8] + forged.encode() + raw[8 + length :])
    _refused(out, "dp-linear-regression", "duplicate key|not valid JSON")


# --- ONNX ------------------------------------------------------------------------------------------


def _onnx_model(out: Path):
    import onnx

    return onnx.load_from_string((out / "model.onnx").read_bytes())


def test_an_onnx_file_that_is_not_onnx_is_refused(folder):
    out = folder("dp-mlp-classifier")
    (out / "model.onnx").write_bytes(b"\x08" + training_csv()[:300])
    _refused(out, "dp-mlp-classifier", "not an ONNX file|other inputs")


def test_an_onnx_model_with_other_weights_than_the_released_ones_is_refused(folder):
    from onnx import numpy_helper

    out = folder("dp-mlp-classifier")
    model = _onnx_model(out)
    first = model.graph.initializer[0]
    changed = numpy_helper.from_array(numpy_helper.to_array(first) + 1, first.name)
    first.CopyFrom(changed)
    (out / "model.onnx").write_bytes(model.SerializeToString())
    _refused(out, "dp-mlp-classifier", "differs from the released weights")


def test_onnx_metadata_is_refused(folder):
    out = folder("dp-logistic-regression")
    model = _onnx_model(out)
    entry = model.metadata_props.add()
    entry.key, entry.value = "rows", "41,3.2"
    (out / "model.onnx").write_bytes(model.SerializeToString())
    _refused(out, "dp-logistic-regression", "more than its graph")


def test_an_onnx_file_larger_than_its_weights_allow_is_refused(folder):
    out = folder("dp-logistic-regression")
    model = _onnx_model(out)
    model.graph.node[0].doc_string = "x" * 10_000
    (out / "model.onnx").write_bytes(model.SerializeToString())
    _refused(out, "dp-logistic-regression", "larger than its bound")


def test_an_onnx_operator_the_runner_does_not_use_is_refused(folder):
    out = folder("dp-logistic-regression")
    model = _onnx_model(out)
    model.graph.node[0].op_type = "Identity"
    (out / "model.onnx").write_bytes(model.SerializeToString())
    _refused(out, "dp-logistic-regression", "operators the runner does not")


# --- the manifest ----------------------------------------------------------------------------------


def test_a_manifest_claiming_no_epsilon_passes_as_the_runners_claim_only(folder):
    # The charge is the reservation (services.execution); the claim only has to lie within it.
    out = folder("dp-statistics")
    _edit_json(out / "manifest.json", lambda m: m.update(epsilon_spent=0))
    assert check_all(out, "dp-statistics").manifest["epsilon_spent"] == 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m["artifacts"].append({"name": "rows.csv", "kind": "file", "description": ""}), "at most"),
        (
            lambda m: m["artifacts"].__setitem__(0, {**m["artifacts"][0], "name": "rows.csv"}),
            "does not release",
        ),
        (lambda m: m["artifacts"].pop(), "exactly the artifacts"),
        (
            lambda m: m["artifacts"][0].update(description="Click https://evil.example to see"),
            "otherwise than its algorithm",
        ),
        (lambda m: m.update(rows=[[41, 3.2]]), "wrong keys"),
        (lambda m: m.update(epsilon_accounted=2.0), "above the job's reservation"),
        (lambda m: m.update(epsilon_spent=-1), "not a number"),
        (lambda m: m.update(parameters_sha256="0" * 64), "other parameters"),
        (lambda m: m.update(public_rows=401), "public row count"),
        (lambda m: m.update(accountant="see x.io"), "another accountant"),
        (lambda m: m.update(epsilon_curve=[[i, 0.1] for i in range(500)]), "at most 200"),
        (lambda m: m.update(epsilon_curve=[[0, "41,3.2"]]), "pairs"),
        (lambda m: m["metrics"].append({**m["metrics"][0], "name": "rows"}), "at most|does not release"),
        (lambda m: m["metrics"][0].update(value="41,3.2"), "not a number"),
        (lambda m: m["metrics"][0].update(description="\x1b[31mpay here\x1b[0m"), "control characters"),
    ],
)
def test_a_manifest_that_is_not_the_algorithms_is_refused(folder, change, match):
    out = folder("dp-statistics")
    _edit_json(out / "manifest.json", change)
    _refused(out, "dp-statistics", match)


def test_a_curve_longer_than_the_epochs_is_refused(folder):
    out = folder("dp-mlp-classifier")
    point = {"epoch": 1, "step": 1, "epsilon": 0.1, "loss": 0.5, "accuracy": 0.5}
    _edit_json(out / "manifest.json", lambda m: m.update(curve=[point] * 3))
    _refused(out, "dp-mlp-classifier", "at most 2 items")


def test_a_curve_point_carrying_a_row_is_refused(folder):
    out = folder("dp-mlp-classifier")
    _edit_json(out / "manifest.json", lambda m: m["curve"][0].update(row="41,3.2"))
    _refused(out, "dp-mlp-classifier", "wrong keys")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_json_with_a_number_that_is_not_finite_is_refused(folder, constant):
    out = folder("dp-statistics")
    path = out / "manifest.json"
    document = json.loads(path.read_text())
    document["rho"] = "PLACEHOLDER"
    path.write_text(json.dumps(document).replace('"PLACEHOLDER"', constant))
    _refused(out, "dp-statistics", "not a finite number|not finite")


def test_json_with_a_duplicate_key_is_refused(folder):
    out = folder("dp-statistics")
    path = out / "manifest.json"
    path.write_text(path.read_text().replace("{", '{"rho": 1, ', 1))
    _refused(out, "dp-statistics", "duplicate key")


def test_an_oversized_manifest_is_refused(folder):
    out = folder("dp-statistics")
    path = out / "manifest.json"
    path.write_text(path.read_text() + " " * outputs.manifest_bound(_release("dp-statistics")))
    _refused(out, "dp-statistics", "larger than its bound")


# --- model card, statistics, Markdown --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c["architecture"].update(input_width=400), "another architecture"),
        (lambda c: c["metrics"].append({"name": "rows", "value": 41}), "not the manifest's"),
        (lambda c: c.update(rows=["41,3.2"]), "wrong keys"),
        (lambda c: c["preprocessing"]["features"].append({"column": "rows"}), "at most|other features"),
        (lambda c: c["dp_and_public"].extend(["41,3.2"] * 20), "at most 12"),
        (lambda c: c["privacy"].update(epsilon_spent=float("nan")), "not a finite number|not finite"),
    ],
)
def test_a_model_card_that_is_not_the_algorithms_is_refused(folder, change, match):
    out = folder("dp-mlp-classifier")
    _edit_json(out / "model_card.json", change)
    _refused(out, "dp-mlp-classifier", match)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["columns"].append({"name": "rows", "type": "text"}), "at most|other columns"),
        (lambda d: d["columns"][0]["histogram"].update(counts=list(range(400))), "longer than the parameters"),
        (lambda d: d["columns"][0]["histogram"].update(counts=[{"row": 1}]), "other things than numbers"),
        (lambda d: d["columns"][0].update(type="text"), "another type"),
        (lambda d: d["columns"][0].update(rows="41,3.2"), "wrong keys"),
        (lambda d: d.update(algorithm="dp-mlp-classifier"), "another algorithm"),
    ],
)
def test_statistics_that_are_not_the_algorithms_are_refused(folder, change, match):
    out = folder("dp-statistics")
    _edit_json(out / "statistics.json", change)
    _refused(out, "dp-statistics", match)


def test_a_report_larger_than_its_columns_allow_is_refused(folder):
    out = folder("dp-statistics")
    path = out / "statistics.md"
    path.write_bytes(path.read_bytes() + training_csv() * 10)
    _refused(out, "dp-statistics", "larger than its bound")


@pytest.mark.parametrize("tail", [b"\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", b"\xff\xfe"])
def test_a_report_with_control_characters_or_not_utf8_is_refused(folder, tail):
    out = folder("dp-mlp-classifier")
    path = out / "model_card.md"
    path.write_bytes(path.read_bytes() + tail)
    _refused(out, "dp-mlp-classifier", "control characters|not UTF-8")


def test_parameters_that_do_not_describe_a_run_are_refused():
    with pytest.raises(outputs.OutputRejected):
        outputs.release_expected(
            algorithm="dp-mlp-classifier", parameters={}, schema=SCHEMA, public_rows=PUBLIC_ROWS, epsilon=1.0
        )
