"""The free preview run: the trusted runner on the dataset's synthetic mock data, with the job's
own DP settings, so a buyer sees the accuracy to expect before paying.

The mock rows are synthesised from the public declared schema (never the provider's uploaded mock
file, which would be parsed outside a sandbox), as many as the public row count (up to
``PREVIEW_MAX_ROWS``), so sampling, steps and noise are calibrated as in the real job. Nothing
private is read and no budget is spent. The run is a child process with a wall-clock limit, so a
heavy request cannot hold a web worker for long."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from common.errors import Conflict, DomainError
from compute_to_data.runner import params as runner_params
from compute_to_data.services.jobs import parameters_for
from marketplace.models import Dataset


class PreviewUnavailable(DomainError):
    code = "preview_failed"
    status = 503


PREVIEW_MAX_ROWS = 5_000
PREVIEW_MAX_EPOCHS = 10
PREVIEW_TIMEOUT_SECONDS = 60


def job_preview_run(*, dataset: Dataset, algorithm: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Run ``algorithm`` on synthetic mock rows; returns ``{"rows", "public_rows", "metrics",
    "statistics" | None, "epsilon", "noise_multiplier", "steps", "note"}``. Raises
    ``InvalidInput``/``Conflict`` for parameters the job itself would refuse."""
    from marketplace.services.datasets import csv_bytes
    from marketplace.services.mock import mock_rows_generate

    normalised = parameters_for(dataset=dataset, algorithm=algorithm, parameters=parameters)
    if runner_params.ALGORITHMS[algorithm].kind != "statistics" and normalised.get("epochs", 0) > PREVIEW_MAX_EPOCHS:
        raise Conflict(
            f"The free preview runs at most {PREVIEW_MAX_EPOCHS} epochs; choose fewer to preview.",
            code="preview_too_large",
        )
    public_rows = int(dataset.public_row_count or 0)
    rows = max(1, min(public_rows, PREVIEW_MAX_ROWS))
    header, data = mock_rows_generate(
        schema=dataset.declared_schema, rows=rows, seed=secrets.randbits(32), max_rows=PREVIEW_MAX_ROWS
    )
    kind = runner_params.ALGORITHMS[algorithm].kind
    with tempfile.TemporaryDirectory(prefix="preview-") as tmp:
        folder = Path(tmp)
        (folder / "mock.csv").write_bytes(csv_bytes(header, data))
        spec = {
            "algorithm": algorithm,
            "parameters": normalised,
            "schema": dataset.declared_schema,
            "data_file": str(folder / "mock.csv"),
            "data_format": "csv",
            "public_rows": rows,
            "holdout": None
            if kind == "statistics"
            else {"fraction": dataset.holdout_fraction, "key": secrets.token_hex(32)},
            "eval_file": None,
            "output_dir": str(folder / "out"),
            "threads": 1,
        }
        (folder / "spec.json").write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "TMPDIR")}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "compute_to_data.runner", str(folder / "spec.json")],
                cwd=str(settings.BASE_DIR),
                env={**env, "PYTHONPATH": str(settings.BASE_DIR), "OMP_NUM_THREADS": "1"},
                capture_output=True,
                timeout=PREVIEW_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PreviewUnavailable(
                f"The preview did not finish within {PREVIEW_TIMEOUT_SECONDS} s; try fewer epochs or columns.",
                code="preview_timeout",
            ) from None
        manifest_path = folder / "out" / "manifest.json"
        if done.returncode != 0 or not manifest_path.is_file():
            raise PreviewUnavailable("The preview run failed; the real job is not affected.", code="preview_failed")
        manifest = json.loads(manifest_path.read_text())
        statistics = None
        if kind == "statistics" and (folder / "out" / "statistics.json").is_file():
            statistics = json.loads((folder / "out" / "statistics.json").read_text())
    return {
        "rows": rows,
        "public_rows": public_rows,
        "epsilon": manifest.get("epsilon_spent"),
        "noise_multiplier": manifest.get("noise_multiplier"),
        "steps": manifest.get("steps"),
        "metrics": manifest.get("metrics", []),
        "statistics": statistics,
        "note": "Run on synthetic rows drawn from the public schema (not the provider's data) with this job's DP "
        "settings: the accuracy shown is what DP noise costs on data of this size and shape; on the real data the "
        "signal can be stronger or weaker."
        + (f" The mock has {rows} rows (the dataset about {public_rows})." if rows != public_rows else ""),
    }
