"""Fast per-example clipping (``compute_to_data.runner.fastdp``) against Opacus's reference path
(GradSampleModule hooks + DPOptimizer, noise 0) on the same batch: the summed clipped gradients
must agree to 1e-5, with examples both under and over the clipping bound. Plus the noise, the
scaling of the step and the Poisson sampling rule."""

from __future__ import annotations

import copy

import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from compute_to_data.runner.fastdp import FastDP, mlp_build, poisson_batch
from compute_to_data.runner.rng import SecureRandom

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook:UserWarning")

TOL = 1e-5


def opacus_clipped_sum(
    model: nn.Module, x, y, criterion, max_grad_norm: float
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Opacus's summed clipped gradients (no noise, loss_reduction "sum") and per-example norms."""
    gsm = GradSampleModule(copy.deepcopy(model), loss_reduction="sum")
    optimizer = DPOptimizer(
        torch.optim.SGD(gsm.parameters(), lr=0.0),
        noise_multiplier=0.0,
        max_grad_norm=max_grad_norm,
        expected_batch_size=len(x),
        loss_reduction="sum",
    )
    optimizer.zero_grad()
    criterion(gsm(x), y).backward()
    per_param = [p.grad_sample.reshape(len(x), -1).norm(2, dim=1) for p in gsm.parameters()]
    norms = torch.stack(per_param, dim=1).norm(2, dim=1)
    optimizer.pre_step()
    return [p.grad.detach().clone() for p in gsm.parameters()], norms


def median_norm(model, x, y, loss: str) -> float:
    """A clipping bound with half the batch's examples under it and half over it."""
    return float(fast_clipped_sum(model, x, y, loss, 1.0).norms.median())


def fast_clipped_sum(model, x, y, loss: str, max_grad_norm: float):
    dp = FastDP(
        model,
        loss=loss,
        max_grad_norm=max_grad_norm,
        noise_multiplier=0.0,
        expected_batch_size=len(x),
        learning_rate=0.0,
    )
    return dp.clipped_grad_sum(x, y)


def batch(n: int, d: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Rows of very different sizes, so that some per-example norms fall under C and some over it.
    x = torch.rand(n, d, generator=g) * torch.logspace(-3, 0.5, n).unsqueeze(1)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def assert_close_grads(ours: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=TOL, rtol=TOL), (a - b).abs().max()


def assert_mixed_clipping(factors: torch.Tensor) -> None:
    assert (factors < 1.0).any() and (factors == 1.0).any(), "the batch must hold examples under and over C"


@pytest.mark.parametrize("seed", [1, 2])
def test_logistic_binary_matches_opacus(seed):
    model = mlp_build([30, 1], generator=SecureRandom(seed=seed))
    x, y = batch(64, 30, 2, seed=seed + 10)
    max_grad_norm = median_norm(model, x, y, "bce")
    ours = fast_clipped_sum(model, x, y, "bce", max_grad_norm)
    ref, ref_norms = opacus_clipped_sum(
        model,
        x,
        y.float(),
        lambda out, t: nn.functional.binary_cross_entropy_with_logits(out[:, 0], t, reduction="sum"),
        max_grad_norm,
    )
    assert torch.allclose(ours.norms, ref_norms, atol=TOL, rtol=TOL)
    assert_mixed_clipping(ours.factors)
    assert_close_grads(ours.grads, ref)


def test_softmax_regression_matches_opacus():
    model = mlp_build([20, 4], generator=SecureRandom(seed=3))
    x, y = batch(50, 20, 4, seed=4)
    c = median_norm(model, x, y, "ce")
    ours = fast_clipped_sum(model, x, y, "ce", c)
    ref, ref_norms = opacus_clipped_sum(model, x, y, nn.CrossEntropyLoss(reduction="sum"), c)
    assert torch.allclose(ours.norms, ref_norms, atol=TOL, rtol=TOL)
    assert_mixed_clipping(ours.factors)
    assert_close_grads(ours.grads, ref)


@pytest.mark.parametrize(("loss", "classes"), [("ce", 3), ("bce", 2)])
def test_three_layer_mlp_matches_opacus(loss, classes):
    model = mlp_build([25, 16, 8, 1 if loss == "bce" else classes], generator=SecureRandom(seed=5))
    x, y = batch(80, 25, classes, seed=6)
    if loss == "ce":
        criterion, target = nn.CrossEntropyLoss(reduction="sum"), y
    else:

        def criterion(out, t):
            return nn.functional.binary_cross_entropy_with_logits(out[:, 0], t, reduction="sum")

        target = y.float()
    c = median_norm(model, x, y, loss)
    ours = fast_clipped_sum(model, x, y, loss, c)
    ref, ref_norms = opacus_clipped_sum(model, x, target, criterion, c)
    assert torch.allclose(ours.norms, ref_norms, atol=TOL, rtol=TOL)
    assert_mixed_clipping(ours.factors)
    assert_close_grads(ours.grads, ref)


def test_linear_regression_matches_opacus():
    model = mlp_build([10, 1], generator=SecureRandom(seed=7))
    g = torch.Generator().manual_seed(8)
    x = torch.rand(40, 10, generator=g) * torch.linspace(0.01, 2, 40).unsqueeze(1)
    y = torch.rand(40, generator=g)
    c = median_norm(model, x, y, "mse")
    ours = fast_clipped_sum(model, x, y, "mse", c)
    ref, _ = opacus_clipped_sum(model, x, y, lambda out, t: ((out[:, 0] - t) ** 2).sum(), c)
    assert_mixed_clipping(ours.factors)
    assert_close_grads(ours.grads, ref)


def test_clip_factor_is_opacus_formula():
    model = mlp_build([5, 1], generator=SecureRandom(seed=9))
    x, y = batch(30, 5, 2, seed=10)
    out = fast_clipped_sum(model, x, y, "bce", 0.1)
    assert torch.equal(out.factors, (0.1 / (out.norms + 1e-6)).clamp(max=1.0))


def test_empty_batch_gives_zero_sums():
    model = mlp_build([6, 4, 3], generator=SecureRandom(seed=11))
    out = fast_clipped_sum(model, torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), "ce", 1.0)
    assert [tuple(g.shape) for g in out.grads] == [(4, 6), (4,), (3, 4), (3,)]
    assert all(float(g.abs().sum()) == 0.0 for g in out.grads)


def test_step_is_sgd_on_clipped_sum_over_expected_batch():
    model = mlp_build([8, 1], generator=SecureRandom(seed=12))
    before = [p.detach().clone() for p in model.parameters()]
    x, y = batch(20, 8, 2, seed=13)
    dp = FastDP(model, loss="bce", max_grad_norm=0.5, noise_multiplier=0.0, expected_batch_size=16, learning_rate=0.3)
    clipped = dp.clipped_grad_sum(x, y).grads
    dp.step(x, y)
    for p, p0, g in zip(model.parameters(), before, clipped, strict=True):
        assert torch.allclose(p.detach(), p0 - 0.3 * g / 16, atol=1e-7)


def test_noise_has_the_calibrated_std():
    model = mlp_build([200, 100], generator=SecureRandom(seed=14))  # 20,100 parameters
    dp = FastDP(
        model,
        loss="ce",
        max_grad_norm=0.7,
        noise_multiplier=1.3,
        expected_batch_size=1,
        learning_rate=1.0,
        generator=SecureRandom(seed=15),
    )
    draws = torch.cat([dp.noise() for _ in range(10)])
    assert abs(float(draws.std()) / (1.3 * 0.7) - 1) < 0.01
    assert abs(float(draws.mean())) < 0.01


def test_noise_differs_between_two_secure_generators():
    model = mlp_build([3, 1], zero_init=True)
    a = FastDP(
        model,
        loss="bce",
        max_grad_norm=1,
        noise_multiplier=1,
        expected_batch_size=1,
        learning_rate=1,
        generator=SecureRandom(),
    )
    b = FastDP(
        model,
        loss="bce",
        max_grad_norm=1,
        noise_multiplier=1,
        expected_batch_size=1,
        learning_rate=1,
        generator=SecureRandom(),
    )
    assert not torch.equal(a.noise(), b.noise())


def test_poisson_sampling_rate_and_empty_batches():
    g = SecureRandom(seed=16)
    sizes = torch.tensor([len(poisson_batch(1000, 0.05, g)) for _ in range(400)], dtype=torch.float64)
    assert abs(float(sizes.mean()) - 50) < 1.5  # binomial(1000, 0.05): sd of the mean ~0.35
    assert float(sizes.std()) > 3  # variable batch sizes, not a fixed batch
    tiny = [len(poisson_batch(10, 0.01, g)) for _ in range(200)]
    assert 0 in tiny  # empty batches happen and are allowed


def test_rejects_layers_it_cannot_clip_exactly():
    with pytest.raises(ValueError):
        FastDP(
            nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 1)),
            loss="bce",
            max_grad_norm=1,
            noise_multiplier=1,
            expected_batch_size=1,
            learning_rate=1,
        )
    with pytest.raises(ValueError):
        FastDP(
            nn.Sequential(nn.Linear(3, 1, bias=False)),
            loss="bce",
            max_grad_norm=1,
            noise_multiplier=1,
            expected_batch_size=1,
            learning_rate=1,
        )
