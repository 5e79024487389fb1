"""Outputs of the real trusted runner, for the worker's output checks: what a run of a job's
algorithm writes to its output folder, made in-process from the job's own public inputs."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from compute_to_data.models import ComputeJob
from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.run import run_spec
from tests.factories import DEFAULT_CSV


def runner_outputs(
    out: Path, *, algorithm: str, parameters: dict[str, Any], schema: dict[str, Any], data: bytes, public_rows: int
) -> None:
    """Run the trusted runner on ``data`` (CSV) into ``out``; ``parameters`` normalised already."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_bytes(data)
        spec = {
            "algorithm": algorithm,
            "parameters": parameters,
            "schema": schema,
            "data_file": str(path),
            "data_format": "csv",
            "output_dir": str(out),
            "public_rows": public_rows,
            "holdout": None if algorithm == "dp-statistics" else {"fraction": 0.2, "key": "5e" * 32},
        }
        events = io.StringIO()
        assert run_spec(spec, stream=events, seed=1) == 0, events.getvalue()[-2000:]


def job_released(job: ComputeJob, out: Path) -> None:
    """What the runner releases for ``job`` (a dp-statistics job of the factories, on their default
    CSV), written to ``out``; the job's parameters become the normalised ones the runner used."""
    dataset = job.dataset
    job.parameters = parameters_normalize(
        job.algorithm,
        {"epsilon": float(job.epsilon), "delta": job.delta, "accountant": "prv"},
        schema=dataset.declared_schema,
        epsilon_max=float(job.epsilon),
        delta_max=job.delta,
    )
    ComputeJob.objects.filter(pk=job.pk).update(parameters=job.parameters)
    runner_outputs(
        out,
        algorithm=job.algorithm,
        parameters=job.parameters,
        schema=dataset.declared_schema,
        data=DEFAULT_CSV,
        public_rows=int(dataset.public_row_count or 0),
    )
