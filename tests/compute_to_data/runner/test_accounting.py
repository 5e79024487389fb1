"""Noise calibration and accounting (``compute_to_data.runner.accounting``) against Opacus: the
training noise multiplier without private metrics is exactly what
``PrivacyEngine.make_private_with_epsilon`` picks, and the accountant's epsilon never exceeds the
requested one (training with and without DP metrics, and dp-statistics)."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch
from opacus import PrivacyEngine
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from compute_to_data.runner import accounting
from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.run import run_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def opacus_choice(*, rows: int, batch_size: int, epochs: int, epsilon: float, delta: float, mechanism: str):
    """What Opacus's make_private_with_epsilon does for these settings."""
    model = nn.Linear(4, 1)
    loader = DataLoader(TensorDataset(torch.zeros(rows, 4), torch.zeros(rows)), batch_size=batch_size)
    engine = PrivacyEngine(accountant=mechanism)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, optimizer, dp_loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            data_loader=loader,
            target_epsilon=epsilon,
            target_delta=delta,
            epochs=epochs,
            max_grad_norm=1.0,
        )
    return optimizer, dp_loader


@pytest.mark.parametrize(
    ("mechanism", "rows", "batch_size", "epochs", "epsilon", "delta"),
    [
        ("rdp", 10_000, 256, 5, 1.0, 1e-5),
        ("rdp", 455, 32, 10, 1.0, 1e-5),
        ("rdp", 60_000, 512, 3, 3.0, 1e-6),
        ("rdp", 1_000, 4096, 2, 0.5, 1e-5),  # batch larger than the data: full-batch steps
        ("prv", 10_000, 256, 5, 1.0, 1e-5),
        ("prv", 455, 32, 10, 2.0, 1e-5),
    ],
)
def test_noise_multiplier_equals_make_private_with_epsilon(mechanism, rows, batch_size, epochs, epsilon, delta):
    optimizer, dp_loader = opacus_choice(
        rows=rows, batch_size=batch_size, epochs=epochs, epsilon=epsilon, delta=delta, mechanism=mechanism
    )
    plan = accounting.training_plan(
        rows=rows,
        batch_size=batch_size,
        epochs=epochs,
        epsilon=epsilon,
        delta=delta,
        mechanism=mechanism,
        private_metrics=False,
    )
    assert plan.noise_multiplier == optimizer.noise_multiplier
    assert plan.sample_rate == dp_loader.sample_rate
    assert plan.steps_per_epoch == len(dp_loader)
    assert plan.expected_batch_size == optimizer.expected_batch_size
    assert plan.eval_steps == 0
    assert plan.epsilon_at(plan.steps) <= epsilon


def test_where_opacus_undercounts_a_step_we_calibrate_for_the_steps_we_run():
    # int(3 / (1 / 75)) == 224 while 3 epochs of 75 batches run 225 steps.
    rows, batch_size, epochs = 75 * 40, 40, 3
    assert int(epochs / (1 / 75)) == 224
    plan = accounting.training_plan(
        rows=rows, batch_size=batch_size, epochs=epochs, epsilon=1.0, delta=1e-5, mechanism="rdp", private_metrics=False
    )
    assert plan.steps == 225
    assert plan.epsilon_at(plan.steps) <= 1.0
    opacus_sigma = get_noise_multiplier(
        target_epsilon=1.0, target_delta=1e-5, sample_rate=1 / 75, epochs=epochs, accountant="rdp"
    )
    assert plan.noise_multiplier >= opacus_sigma


SETTINGS = [
    (10_000, 256, 5, 1.0, 1e-5),
    (455, 32, 10, 1.0, 1e-5),
    (2_000, 64, 50, 0.3, 1e-6),
    (500, 8, 20, 8.0, 1e-5),
    (100_000, 4096, 1, 0.5, 1e-7),
]


@pytest.mark.parametrize("private_metrics", [False, True])
@pytest.mark.parametrize(("rows", "batch_size", "epochs", "epsilon", "delta"), SETTINGS)
def test_rdp_epsilon_never_exceeds_the_target(rows, batch_size, epochs, epsilon, delta, private_metrics):
    plan = accounting.training_plan(
        rows=rows,
        batch_size=batch_size,
        epochs=epochs,
        epsilon=epsilon,
        delta=delta,
        mechanism="rdp",
        private_metrics=private_metrics,
    )
    # Step a real Opacus accountant exactly as the runner does: each training step, then the
    # evaluation query at each epoch end.
    accountant = RDPAccountant()
    for _ in range(epochs):
        for _ in range(plan.steps_per_epoch):
            accountant.step(noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate)
        if private_metrics:
            accountant.step(noise_multiplier=plan.eval_noise_multiplier, sample_rate=1.0)
    spent = accountant.get_epsilon(delta=delta)
    assert spent <= epsilon
    assert spent > epsilon - 0.05  # calibrated, not wildly over-noised
    assert plan.epsilon_at(plan.steps) == pytest.approx(spent, rel=1e-9)
    if private_metrics:
        assert plan.eval_steps == epochs and plan.eval_noise_multiplier > 0


@pytest.mark.parametrize("private_metrics", [False, True])
def test_prv_epsilon_never_exceeds_the_target(private_metrics):
    plan = accounting.training_plan(
        rows=3_000,
        batch_size=100,
        epochs=4,
        epsilon=1.5,
        delta=1e-5,
        mechanism="prv",
        private_metrics=private_metrics,
    )
    accountant = PRVAccountant()
    for _ in range(plan.epochs):
        for _ in range(plan.steps_per_epoch):
            accountant.step(noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate)
        if private_metrics:
            accountant.step(noise_multiplier=plan.eval_noise_multiplier, sample_rate=1.0)
    assert accounting.accountant_epsilon(accountant, 1e-5) <= 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert accountant.get_epsilon(delta=1e-5) <= 1.5 + 1e-6  # the live, unmerged history too


def test_private_metrics_train_as_if_with_the_eval_share_less():
    kwargs = dict(rows=10_000, batch_size=256, epochs=5, epsilon=1.0, delta=1e-5, mechanism="rdp")
    without = accounting.training_plan(**kwargs, private_metrics=False)
    with_metrics = accounting.training_plan(**kwargs, private_metrics=True)
    as_if_less = get_noise_multiplier(
        target_epsilon=(1 - accounting.EVAL_EPSILON_SHARE) * 1.0,
        target_delta=1e-5,
        sample_rate=without.sample_rate,
        steps=without.steps,
        accountant="rdp",
    )
    assert without.noise_multiplier < with_metrics.noise_multiplier == as_if_less


def test_fast_rdp_curve_equals_the_accountant():
    plan = accounting.training_plan(
        rows=5_000, batch_size=128, epochs=3, epsilon=2.0, delta=1e-5, mechanism="rdp", private_metrics=True
    )
    steps = [1, 7, plan.steps_per_epoch, plan.steps_per_epoch + 1, plan.steps]
    fast = plan.epsilons_at(steps)
    for step, value in zip(steps, fast, strict=True):
        accountant = RDPAccountant()
        accountant.history = plan.history_at(step)
        assert value == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)
    assert fast == sorted(fast)


def test_curve_steps_hold_epoch_ends_and_fit_200_points():
    steps = accounting.curve_steps(50 * 391, every=391, points=200)
    assert len(steps) <= 200
    assert steps[-1] == 50 * 391
    assert set(range(391, 50 * 391 + 1, 391)) <= set(steps)
    assert accounting.curve_steps(7, every=7, points=200) == [1, 2, 3, 4, 5, 6, 7]


def test_too_small_epsilon_is_an_invalid_parameter():
    from compute_to_data.runner.errors import InvalidParameters

    with pytest.raises(InvalidParameters):
        accounting.training_plan(
            rows=1_000, batch_size=1_000, epochs=50, epsilon=0.01, delta=1e-5, mechanism="rdp", private_metrics=False
        )


# --- dp-statistics ------------------------------------------------------------------------------


STAT_SCHEMA = {
    "columns": [
        {"name": "a", "type": "float", "min": 0, "max": 10},
        {"name": "b", "type": "integer", "min": -5, "max": 5},
        {"name": "c", "type": "categorical", "categories": ["x", "y", "z"]},
        {"name": "d", "type": "boolean"},
        {"name": "e", "type": "datetime", "min": "2020-01-01", "max": "2021-01-01"},
    ]
}


@pytest.fixture(scope="module")
def stat_csv(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("stats") / "data.csv"
    rng = np.random.default_rng(0)
    lines = ["a,b,c,d,e"]
    for i in range(500):
        lines.append(
            f"{rng.uniform(0, 10):.3f},{rng.integers(-5, 6)},{'xyz'[i % 3]},{'true' if i % 4 else 'false'},"
            f"2020-{1 + i % 12:02d}-15"
        )
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("accountant", "epsilon", "statistics"),
    [
        ("rdp", 1.0, None),
        ("rdp", 0.3, ["count", "mean"]),
        ("rdp", 5.0, ["histogram", "quantiles"]),
        ("prv", 0.5, None),
    ],
)
def test_statistics_epsilon_never_exceeds_the_target(tmp_path, stat_csv, accountant, epsilon, statistics):
    import opendp.prelude as dp

    from compute_to_data.runner.statistics import count_measurement, zcdp_epsilon

    given = {"epsilon": epsilon, "accountant": accountant}
    if statistics:
        given["statistics"] = statistics
    params = parameters_normalize("dp-statistics", given, schema=STAT_SCHEMA, epsilon_max=epsilon, delta_max=1e-5)
    spec = {
        "algorithm": "dp-statistics",
        "parameters": params,
        "schema": STAT_SCHEMA,
        "data_file": stat_csv,
        "data_format": "csv",
        "output_dir": str(tmp_path),
        "public_rows": 500,
    }
    assert run_spec(spec, stream=io.StringIO()) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    doc = json.loads((tmp_path / "statistics.json").read_text())
    # What is charged is exactly what was reserved; OpenDP certifies at most that.
    assert manifest["epsilon_spent"] == epsilon
    assert epsilon - 0.01 < manifest["epsilon_accounted"] <= epsilon
    assert manifest["sample_rate"] == 1.0 and manifest["accountant"] == "zcdp"
    k = manifest["steps"]
    rho = doc["rho"]
    # The total rho converts (OpenDP's zCDP -> approx-DP map) to at most epsilon, and the classic
    # bound rho + 2 sqrt(rho ln(1/delta)) is never tighter than OpenDP's.
    assert zcdp_epsilon(rho, 1e-5) <= epsilon
    assert rho + 2 * np.sqrt(rho * np.log(1e5)) >= zcdp_epsilon(rho, 1e-5)
    # Equal shares: every Gaussian query has noise multiplier 1 / sqrt(2 rho / k).
    assert manifest["noise_multiplier"] == pytest.approx(1 / np.sqrt(2 * rho / k), rel=1e-9)
    # A count at the stated noise std costs (by OpenDP's own map) at most its share.
    std = next(c[key]["noise_std"] for c in doc["columns"] for key in ("count", "histogram") if key in c)
    assert count_measurement(std).map(1) <= rho / k * (1 + 1e-9)
    assert isinstance(count_measurement(std).output_measure, type(dp.zero_concentrated_divergence()))
    # a, b (numeric): count, grid sum, histogram, one exponential mechanism per quantile level (3);
    # e (datetime): the same (its sum feeds the mean); c (categorical): count, histogram;
    # d (boolean): count, grid sum, histogram.
    expected_k = {
        None: 6 + 6 + 2 + 3 + 6,
        ("count", "mean"): 2 + 2 + 1 + 2 + 2,
        ("histogram", "quantiles"): 4 + 4 + 1 + 1 + 4,
    }
    assert k == expected_k[tuple(statistics) if statistics else None]


def test_statistics_plan_maps_sum_to_the_total_rho():
    from compute_to_data.runner.statistics import statistics_plan

    params = parameters_normalize("dp-statistics", {}, schema=STAT_SCHEMA, epsilon_max=1.0, delta_max=1e-5)
    plan = statistics_plan(params, STAT_SCHEMA)
    maps = [q.measurement.map(1) for q in plan.queries]
    assert sum(maps) <= plan.rho * (1 + 1e-9)
    assert min(maps) >= plan.rho_per_query * (1 - 1e-6)  # calibrated, not over-noised
