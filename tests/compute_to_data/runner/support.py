"""What the runner tests share: a small learnable table and a training spec on it, and the model
rebuilt from the weights a run released."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from compute_to_data.runner.fastdp import mlp_build
from compute_to_data.runner.params import parameters_normalize

SCHEMA = {
    "columns": [
        {"name": "x1", "type": "float", "min": 0, "max": 1},
        {"name": "x2", "type": "float", "min": 0, "max": 1},
        {"name": "label", "type": "boolean"},
    ]
}


def training_data(folder: Path, rows: int = 200) -> Path:
    """``rows`` rows of two uniform features whose sum decides ``label``, as data.csv in ``folder``."""
    values = np.random.default_rng(3).uniform(0, 1, size=(rows, 2))
    body = "".join(f"{a:.4f},{b:.4f},{'true' if a + b > 1 else 'false'}\n" for a, b in values)
    path = folder / "data.csv"
    path.write_text("x1,x2,label\n" + body)
    return path


def training_spec(data: Path, out: Path, algorithm: str = "dp-mlp-classifier") -> dict:
    """A runner spec training ``algorithm`` on :func:`training_data` for two epochs."""
    given = {"target": "label", "epochs": 2, "batch_size": 32}
    if algorithm == "dp-mlp-classifier":
        given["hidden_sizes"] = [8]
    params = parameters_normalize(algorithm, given, schema=SCHEMA, epsilon_max=1.0, delta_max=1e-5)
    return {
        "algorithm": algorithm,
        "parameters": params,
        "schema": SCHEMA,
        "data_file": str(data),
        "data_format": "csv",
        "output_dir": str(out),
        "public_rows": 200,
        "holdout": {"fraction": 0.2, "key": "5e" * 32},
    }


def torch_model_from_weights(path: Path) -> torch.nn.Sequential:
    """The MLP whose weights the runner released in ``path`` (safetensors)."""
    tensors = load_file(str(path))
    count = len(tensors) // 2
    sizes = [tensors["layers.0.weight"].shape[1]] + [tensors[f"layers.{i}.weight"].shape[0] for i in range(count)]
    model = mlp_build(sizes, zero_init=True)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, layer in enumerate(linears):
            layer.weight.copy_(tensors[f"layers.{i}.weight"])
            layer.bias.copy_(tensors[f"layers.{i}.bias"])
    return model
