"""An epsilon the RDP accountant cannot certify is refused when the parameters are checked (before
anything is paid), and the smallest epsilon accepted does run."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from compute_to_data.runner.params import ParameterError, parameters_normalize, rdp_epsilon_floor
from compute_to_data.runner.run import run_spec

SCHEMA = {
    "columns": [
        {"name": "x", "type": "float", "min": 0, "max": 1},
        {"name": "y", "type": "boolean"},
    ]
}


def _smallest_accepted(algorithm: str, extra: dict) -> float:
    epsilon = round(rdp_epsilon_floor(1e-5), 3)
    while True:
        try:
            parameters_normalize(algorithm, {**extra, "epsilon": epsilon}, schema=SCHEMA, epsilon_max=1, delta_max=1e-5)
            return epsilon
        except ParameterError as exc:
            assert exc.field == "epsilon" and "'prv'" in exc.message
            epsilon = round(epsilon + 0.001, 3)


@pytest.mark.parametrize(
    ("algorithm", "extra"),
    [("dp-statistics", {}), ("dp-logistic-regression", {"target": "y", "epochs": 2, "batch_size": 32})],
)
def test_the_smallest_epsilon_accepted_with_rdp_runs_and_stays_within_it(tmp_path, algorithm, extra):
    epsilon = _smallest_accepted(algorithm, extra)
    assert epsilon < 0.2
    with pytest.raises(ParameterError):
        parameters_normalize(
            algorithm, {**extra, "epsilon": epsilon - 0.002}, schema=SCHEMA, epsilon_max=1, delta_max=1e-5
        )
    # The prv accountant takes what rdp cannot certify.
    parameters_normalize(
        algorithm, {**extra, "epsilon": epsilon / 2, "accountant": "prv"}, schema=SCHEMA, epsilon_max=1, delta_max=1e-5
    )
    rng = np.random.default_rng(1)
    rows = "\n".join(f"{v:.4f},{'true' if v > 0.5 else 'false'}" for v in rng.uniform(0, 1, 300))
    (tmp_path / "data.csv").write_text("x,y\n" + rows + "\n")
    (tmp_path / "out").mkdir()
    parameters = parameters_normalize(
        algorithm, {**extra, "epsilon": epsilon}, schema=SCHEMA, epsilon_max=1, delta_max=1e-5
    )
    spec = {
        "algorithm": algorithm,
        "parameters": parameters,
        "schema": SCHEMA,
        "data_file": str(tmp_path / "data.csv"),
        "data_format": "csv",
        "eval_file": None,
        "output_dir": str(tmp_path / "out"),
        "threads": 1,
        "public_rows": 300,
    }
    stream = io.StringIO()
    assert run_spec(spec, stream=stream) == 0, stream.getvalue()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["epsilon_spent"] == epsilon
    assert 0 < manifest["epsilon_accounted"] <= epsilon
