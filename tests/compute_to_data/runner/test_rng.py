"""Randomness that protects privacy (issue 12, finding 1): every noise draw and sampling decision of
a training job comes from a Philox generator keyed with 128 fresh OS bits; two jobs never share a
noise stream; the key never appears in anything the job writes or says."""

from __future__ import annotations

import io
import json
import pickle
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from compute_to_data.runner import rng as rng_module
from compute_to_data.runner.rng import KEY_BITS, SecureRandom
from compute_to_data.runner.run import run_spec
from tests.compute_to_data.runner.support import training_data, training_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def _key(generator: SecureRandom) -> int:
    words = generator._generator.bit_generator.state["state"]["key"]
    return int(words[0]) | int(words[1]) << 64


def test_each_generator_gets_a_fresh_128_bit_key_from_the_os(monkeypatch):
    asked: list[int] = []
    real = rng_module.secrets.randbits

    def spy(bits: int) -> int:
        asked.append(bits)
        return real(bits)

    # Only the runner's module sees the spy (numpy draws its own, unused, OS entropy too).
    monkeypatch.setattr(rng_module, "secrets", SimpleNamespace(randbits=spy))
    keys = [_key(SecureRandom()) for _ in range(16)]
    assert asked == [KEY_BITS] * 16 and KEY_BITS >= 128
    assert len(set(keys)) == 16
    # Philox's key is two 64-bit words, both filled: 16 keys all under 2**120 would be a 1-in-2**120 event.
    assert max(k.bit_length() for k in keys) > 120
    assert all(k >> 64 for k in keys)


def test_two_generators_draw_different_noise_streams():
    a, b = SecureRandom(), SecureRandom()
    assert not torch.equal(a.normal(1000, 1.0), b.normal(1000, 1.0))
    assert not np.array_equal(a.random(1000), b.random(1000))
    # A test seed reproduces a stream; that path is for tests only.
    assert torch.equal(SecureRandom(seed=5).normal(10, 1.0), SecureRandom(seed=5).normal(10, 1.0))


def test_the_key_is_never_shown_or_copied():
    generator = SecureRandom()
    key = _key(generator)
    assert str(key) not in repr(generator) and f"{key:x}" not in repr(generator)
    with pytest.raises(TypeError):
        pickle.dumps(generator)


def test_two_jobs_never_share_a_noise_stream(tmp_path):
    data = training_data(tmp_path)
    weights = []
    for name in ("a", "b"):
        assert run_spec(training_spec(data, tmp_path / name), stream=io.StringIO()) == 0
        weights.append((tmp_path / name / "model.safetensors").read_bytes())
    assert weights[0] != weights[1]


def test_no_key_appears_in_any_event_artifact_or_manifest(tmp_path, monkeypatch):
    drawn: list[int] = []
    real = rng_module.secrets.randbits

    def spy(bits: int) -> int:
        drawn.append(real(bits))
        return drawn[-1]

    monkeypatch.setattr(rng_module, "secrets", SimpleNamespace(randbits=spy))
    stream = io.StringIO()
    out = tmp_path / "out"
    assert run_spec(training_spec(training_data(tmp_path), out), stream=stream) == 0
    assert len(drawn) == 1  # one generator per job, nothing else drew a key
    key = drawn[0]
    words = [key & (2**64 - 1), key >> 64]
    forms = {str(key), f"{key:x}", f"{key:X}", f"{key:032x}", *(str(w) for w in words), *(f"{w:x}" for w in words)}
    forms |= {key.to_bytes(16, "little").hex(), key.to_bytes(16, "big").hex()}
    texts = [stream.getvalue()]
    blobs = []
    for path in out.iterdir():
        raw = path.read_bytes()
        blobs.append(raw)
        if path.suffix in (".json", ".md"):
            texts.append(raw.decode())
    for form in forms:
        assert all(form not in text for text in texts), form
    for raw in blobs:
        assert key.to_bytes(16, "little") not in raw and key.to_bytes(16, "big") not in raw
    manifest = json.loads((out / "manifest.json").read_text())
    assert "seed" not in json.dumps(manifest).lower()


def test_the_secure_generator_costs_little_beside_torch():
    generator, reference = SecureRandom(), torch.Generator().manual_seed(1)

    def best(draw) -> float:
        draw()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            draw()
            times.append(time.perf_counter() - start)
        return min(times)

    secure = best(lambda: generator.normal(1_000_000, 1.0))
    mersenne = best(lambda: torch.normal(0.0, 1.0, size=(1_000_000,), generator=reference))
    assert secure < 0.25  # seconds per million draws, on a loaded two-core machine
    assert secure < 10 * mersenne, (secure, mersenne)
    draws = generator.normal(200_000, 2.0)
    assert draws.dtype == torch.float32 and abs(float(draws.std()) - 2.0) < 0.02
