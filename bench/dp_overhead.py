"""DP-SGD step overhead: time of one DP-SGD step divided by the time of one ordinary (non-private)
step, same model, same data, same batch, measured side by side in one process.

Run from the repository root::

    .venv/bin/python bench/dp_overhead.py [--steps 300] [--rounds 5] [--threads 1]

Models: the runner's logistic regression (one Linear, 30 features) and a 3-layer MLP (100
features, Linear-ReLU-Linear-ReLU-Linear with 64 and 32 hidden units), batch 256, synthetic
data, binary cross-entropy. For each model:

* non-private: ``model(x)``, BCE-with-logits (mean), ``zero_grad``, ``backward``, ``SGD.step``;
* fast clipping: ``compute_to_data.runner.fastdp.FastDP.step`` (exact per-example clipping from
  one ``autograd.grad`` to the layer outputs, one Gaussian draw per coordinate from the runner's
  secure generator (Philox keyed with 128 OS bits), SGD step), as the runner trains;
* anchors, Opacus 1.6 on the same batch: ``PrivacyEngine.make_private`` with the default hooks
  (per-example gradients materialised), and with ``grad_sample_mode="ghost"`` (ghost clipping,
  two backward passes); Poisson sampling off so every method sees the same batch.

Each method is warmed up, then timed step by step in ``--rounds`` interleaved rounds of
``--steps`` steps (so drift on a shared machine hits all methods alike); the figure is the ratio
of medians. No Django, no database.

Two more figures: the secure generator alone (``rng.SecureRandom.normal``, 1M float32 Gaussians,
beside torch's Mersenne Twister ``torch.normal``), and the runner's datetime parsing of 200k ISO
strings with a time zone against 200k without (``preprocess.datetimes``; target <= 3x, so that
run time does not depend on the values).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import report  # noqa: E402

BATCH = 256
TARGET = 1.5
PARSE_TARGET = 3.0
PARSE_VALUES = 200_000
MODELS = {"logistic": [30, 1], "3-layer MLP": [100, 64, 32, 1]}


def build_steps(sizes: list[int], *, seed: int) -> dict[str, Callable[[], None]]:
    """One closure per method, each doing one full training step on the same batch."""
    import torch
    from opacus import PrivacyEngine
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from compute_to_data.runner.fastdp import FastDP, mlp_build
    from compute_to_data.runner.rng import SecureRandom

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(BATCH, sizes[0], generator=g)
    y = (torch.rand(BATCH, generator=g) < 0.5).float()
    y2 = y.unsqueeze(1)
    template = mlp_build(sizes, generator=SecureRandom(seed=seed))
    criterion = nn.BCEWithLogitsLoss()
    steps: dict[str, Callable[[], None]] = {}

    plain = copy.deepcopy(template)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.05)

    def non_private() -> None:
        plain_opt.zero_grad(set_to_none=True)
        criterion(plain(x), y2).backward()
        plain_opt.step()

    steps["non-private"] = non_private

    fast = FastDP(
        copy.deepcopy(template),
        loss="bce",
        max_grad_norm=1.0,
        noise_multiplier=1.0,
        expected_batch_size=BATCH,
        learning_rate=0.05,
        generator=SecureRandom(),
    )
    steps["fast clipping"] = lambda: fast.step(x, y)

    loader = DataLoader(TensorDataset(x, y2), batch_size=BATCH)
    for mode in ("hooks", "ghost"):
        model = copy.deepcopy(template)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made = PrivacyEngine(accountant="rdp").make_private(
                module=model,
                optimizer=optimizer,
                criterion=nn.BCEWithLogitsLoss(),
                data_loader=loader,
                noise_multiplier=1.0,
                max_grad_norm=1.0,
                poisson_sampling=False,
                grad_sample_mode=mode,
            )
        if mode == "ghost":
            dp_model, dp_opt, dp_crit, _ = made
        else:
            dp_model, dp_opt, _ = made
            dp_crit = nn.BCEWithLogitsLoss()

        def opacus_step(model=dp_model, opt=dp_opt, crit=dp_crit) -> None:
            opt.zero_grad(set_to_none=True)
            crit(model(x), y2).backward()
            opt.step()

        steps[f"Opacus {mode}"] = opacus_step
    return steps


def time_steps(steps: dict[str, Callable[[], None]], *, warmup: int, per_round: int, rounds: int) -> dict[str, float]:
    """Median seconds per step of each method, rounds interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    clock = time.perf_counter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in steps.values():
            for _ in range(warmup):
                step()
        for _ in range(rounds):
            for name, step in steps.items():
                record = samples[name]
                for _ in range(per_round):
                    start = clock()
                    step()
                    record.append(clock() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def _best_of(draw: Callable[[], object], repeats: int) -> float:
    draw()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        draw()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generator_cost(repeats: int) -> tuple[float, float]:
    """Median seconds for 1M float32 N(0, 1) draws: the secure generator, torch's Mersenne Twister."""
    import torch

    from compute_to_data.runner.rng import SecureRandom

    secure, mersenne = SecureRandom(), torch.Generator().manual_seed(1)
    return (
        _best_of(lambda: secure.normal(1_000_000, 1.0), repeats),
        _best_of(lambda: torch.normal(0.0, 1.0, size=(1_000_000,), generator=mersenne), repeats),
    )


def parse_times(repeats: int) -> tuple[float, float]:
    """Median seconds to parse PARSE_VALUES ISO datetimes: (zoned, naive)."""
    import pyarrow as pa

    from compute_to_data.runner.preprocess import datetimes

    naive = [
        f"20{10 + i % 15}-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
        for i in range(PARSE_VALUES)
    ]
    zoned = [f"{v}{'+' if i % 2 else '-'}{i % 12:02d}:{(i % 2) * 30:02d}" for i, v in enumerate(naive)]
    naive_array, zoned_array = pa.array(naive), pa.array(zoned)
    return _best_of(lambda: datetimes(zoned_array), repeats), _best_of(lambda: datetimes(naive_array), repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per method per round (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps per method first (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1, as the runner)")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(args.threads)
        for name, sizes in MODELS.items():
            medians = time_steps(
                build_steps(sizes, seed=7), warmup=args.warmup, per_round=args.steps, rounds=args.rounds
            )
            base = medians["non-private"]
            ratio = {k: v / base for k, v in medians.items()}
            fast = ratio["fast clipping"]
            report(
                f"dp step overhead, {name}, fast clipping",
                fast,
                "x",
                target=f"<= {TARGET:g}x; Opacus hooks {ratio['Opacus hooks']:.1f}x, ghost {ratio['Opacus ghost']:.1f}x",
                ok=fast <= TARGET,
                fmt="{:.2f}",
            )
            report(
                f"step time, {name}",
                base * 1e6,
                "us non-private",
                anchor=(
                    f"fast clipping {medians['fast clipping'] * 1e6:.0f} us, Opacus hooks "
                    f"{medians['Opacus hooks'] * 1e6:.0f} us, ghost {medians['Opacus ghost'] * 1e6:.0f} us; "
                    f"batch {BATCH}, layers {sizes}, {args.threads} thread(s), median of {args.rounds * args.steps}"
                ),
                fmt="{:.0f}",
            )
        secure, mersenne = generator_cost(max(3, args.rounds))
        report(
            "secure generator",
            secure * 1e3,
            "ms per 1M gaussians",
            anchor=f"torch MT {mersenne * 1e3:.1f} ms, {secure / mersenne:.1f}x; Philox-4x64 keyed with 128 OS bits",
        )
        zoned, naive = parse_times(max(3, args.rounds))
        report(
            "datetime parse, zoned / naive",
            zoned / naive,
            "x",
            target=f"<= {PARSE_TARGET:g}x",
            ok=zoned / naive <= PARSE_TARGET,
            anchor=f"zoned {zoned * 1e3:.0f} ms, naive {naive * 1e3:.0f} ms for {PARSE_VALUES:,} ISO strings",
            fmt="{:.2f}",
        )
        return 0
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
