"""dp-statistics through OpenDP (issue 12, finding 2): exact integer samplers whose noise matches
the stated scale, privacy maps that compose within the budget, and a total rho that converts to
exactly the requested epsilon."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compute_to_data.runner.params import parameters_normalize
from compute_to_data.runner.statistics import (
    count_measurement,
    histogram_measurement,
    quantile_measurement,
    rho_for,
    statistics_plan,
    sum_measurement,
    zcdp_epsilon,
)

SCHEMA = {"columns": [{"name": "a", "type": "float", "min": 0, "max": 10}]}


def _count_std(epsilon: float) -> float:
    params = parameters_normalize(
        "dp-statistics", {"statistics": ["count"], "epsilon": epsilon}, schema=SCHEMA, epsilon_max=10, delta_max=1e-5
    )
    plan = statistics_plan(params, SCHEMA)
    (query,) = plan.queries
    return query.scale


def test_count_noise_matches_its_stated_scale_and_is_integer():
    scale = _count_std(1.0)
    measurement = count_measurement(scale)
    data = np.arange(50, dtype=np.int64)
    releases = np.array([measurement(data) for _ in range(3_000)])
    assert all(isinstance(v, int) for v in releases[:50].tolist())
    noise = releases - 50
    assert abs(noise.std() / scale - 1) < 0.1, (noise.std(), scale)
    assert abs(noise.mean()) < 4 * scale / math.sqrt(len(noise))


def test_histograms_and_sums_are_integers_and_maps_match_the_sensitivity():
    hist = histogram_measurement(3.0, 4)
    counts = hist(np.array([0, 1, 1, 3, 7, -1], dtype=np.int64))  # 7 and -1 are outside the bins
    assert len(counts) == 4 and all(isinstance(c, int) for c in counts)
    assert hist.map(1) == pytest.approx(1 / (2 * 9))  # L2 sensitivity 1 under add/remove
    total = sum_measurement(1000.0, 8)
    assert isinstance(total(np.array([8, -8, 100], dtype=np.int64)), int)
    assert total.map(1) == pytest.approx(64 / (2 * 1000.0**2))  # one row moves the clamped sum by 8


def test_the_quantile_is_a_candidate_near_the_truth():
    candidates = [float(c) for c in np.linspace(0, 10, 101)]
    data = np.random.default_rng(1).uniform(0, 10, 2_000)
    median = quantile_measurement(1.0, candidates, 0.5)(data)
    assert median in candidates and abs(median - np.median(data)) < 0.5


@pytest.mark.parametrize(("epsilon", "delta"), [(0.1, 1e-6), (1.0, 1e-5), (8.0, 1e-7)])
def test_the_total_rho_converts_to_exactly_the_requested_epsilon(epsilon, delta):
    rho = rho_for(epsilon, delta)
    assert zcdp_epsilon(rho, delta) <= epsilon
    assert zcdp_epsilon(rho * (1 + 1e-6), delta) > epsilon * (1 - 1e-5)
    # OpenDP's conversion is at least as tight as the classic rho + 2 sqrt(rho ln(1/delta)).
    assert rho + 2 * math.sqrt(rho * math.log(1 / delta)) >= epsilon


def test_more_epsilon_means_less_noise():
    assert _count_std(0.5) > _count_std(1.0) > _count_std(4.0)
