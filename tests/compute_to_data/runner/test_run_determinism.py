"""Byte-deterministic artifacts (issue 12, finding 9): identical contents give identical bytes, so
the result hash on chain can be re-checked by hashing the download."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from compute_to_data.runner import artifacts
from compute_to_data.runner.fastdp import mlp_build
from compute_to_data.runner.rng import SecureRandom
from compute_to_data.runner.run import run_spec
from tests.compute_to_data.runner.support import training_data, training_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

METADATA = {"format": "pt", "algorithm": "x", "layers": '["layers.0"]', "b": "2", "a": "1", "z": "last"}


def test_safetensors_bytes_depend_only_on_the_contents(tmp_path):
    model = mlp_build([5, 4, 2], generator=SecureRandom(seed=1))
    artifacts.weights_write(tmp_path / "a.safetensors", model, METADATA)
    artifacts.weights_write(tmp_path / "b.safetensors", model, dict(reversed(list(METADATA.items()))))
    first, second = (tmp_path / "a.safetensors").read_bytes(), (tmp_path / "b.safetensors").read_bytes()
    assert first == second
    # Still a valid safetensors file: the library reads the tensors and the metadata back.
    tensors = load_file(str(tmp_path / "a.safetensors"))
    assert torch.equal(tensors["layers.0.weight"], model[0].weight.detach())
    assert torch.equal(tensors["layers.1.bias"], model[2].bias.detach())
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as fh:
        assert fh.metadata() == METADATA
    header_len = int.from_bytes(first[:8], "little")
    assert header_len % 8 == 0 and b"__metadata__" in first[8 : 8 + header_len]


def test_onnx_and_json_bytes_are_deterministic(tmp_path):
    model = mlp_build([3, 2], generator=SecureRandom(seed=2))
    one = artifacts.onnx_bytes(artifacts.onnx_build(model, kind="classifier", classes=2))
    two = artifacts.onnx_bytes(artifacts.onnx_build(model, kind="classifier", classes=2))
    assert one == two
    assert artifacts.json_bytes({"b": 1, "a": [1.5, None]}) == artifacts.json_bytes({"a": [1.5, None], "b": 1})


def test_two_trainings_with_one_test_generator_hash_the_same(tmp_path):
    data = training_data(tmp_path)
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert run_spec(training_spec(data, out), stream=io.StringIO(), seed=1234) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        names = sorted(a["name"] for a in manifest["artifacts"]) + ["manifest.json"]
        digests.append({n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names})
    assert digests[0] == digests[1]
    assert np.isfinite(json.loads((tmp_path / "a" / "manifest.json").read_text())["epsilon_accounted"])
