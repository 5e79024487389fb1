"""DP-SGD training of the runner's models, with DP evaluation queries and public evaluation.

What is released and why it is private:

* the weights: DP-SGD (Poisson sampling at ``sample_rate``, exact per-example clipping at C,
  Gaussian noise ``noise_multiplier * C``), accounted step by step in an Opacus accountant;
* with ``private_metrics``: at each epoch end one Gaussian mechanism (sample rate 1) over the
  holdout rows (the training rows when the holdout fraction is 0) of the vector
  (clipped loss / L, correct prediction, 1) / sqrt(3) for classifiers
  or (clipped squared error / L, 1) / sqrt(2) for regression, whose L2 sensitivity is 1; the DP loss,
  accuracy or MSE are post-processing of those noisy sums. It is accounted in the same accountant;
* the epsilon curve: a function of public hyper-parameters only;
* metrics on a buyer-supplied evaluation file: public data, computed exactly.

Nothing released depends on the exact private row count: the sampling rate (Opacus's
``1 / ceil(rows / batch_size)``), the steps, the expected batch size and the noise come from the
owner's public declared row count (``public_rows``, less the public holdout share). Poisson
sampling draws over the real rows at that public rate, which is what the accountant assumes.

The holdout is split inside the runner from a per-dataset secret key (``holdout_split``): a buyer
cannot choose it, and it is the same for every job on the dataset. Every draw of noise and every
sampling decision comes from the job's ``rng.SecureRandom``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from . import accounting, preprocess
from .errors import InvalidData, InvalidParameters
from .events import Events
from .fastdp import FastDP, mlp_build, per_example_loss, poisson_batch
from .rng import SecureRandom

EVAL_CHUNK = 65_536
REGRESSION_ERROR_BOUND = 0.25
# Training progress goes out every this share of the steps (and at each epoch end): a schedule of
# public step numbers, never of wall-clock time, which would depend on the batch sizes drawn.
PROGRESS_EVERY = 0.01


def holdout_split(rows: int, fraction: float, key: str) -> np.ndarray:
    """Boolean mask of the holdout rows: row i is held out when the i-th uniform of Philox keyed
    with the first 128 bits of SHA-256(b"ppdx-holdout" + key) is below ``fraction``. The key is
    the dataset's secret (64 hex characters), so the split is stable per dataset and no buyer can
    choose it; the key itself is never released."""
    if fraction <= 0 or rows == 0:
        return np.zeros(rows, dtype=bool)
    digest = hashlib.sha256(b"ppdx-holdout" + bytes.fromhex(key)).digest()
    generator = np.random.Generator(np.random.Philox(key=int.from_bytes(digest[:16], "little")))
    return generator.random(rows) < fraction


def public_split(public_rows: int, fraction: float) -> tuple[int, int]:
    """(public training rows, public holdout rows) from the declared count: public numbers only."""
    held = int(round(public_rows * fraction))
    return max(1, public_rows - held), held


@dataclass
class TrainResult:
    model: nn.Sequential
    kind: str  # "classifier" | "regressor"
    loss: str
    features: list[preprocess.FeatureSpec]
    target: preprocess.TargetSpec
    plan: accounting.TrainingPlan
    epsilon_accounted: float
    loss_bound: float
    curve: list[dict[str, Any]] = field(default_factory=list)
    epsilon_curve: list[list[float]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    eval_noise_std: float = 0.0
    evaluated_on: str = "training"  # "holdout" | "training": the rows of the DP evaluation queries
    public_rows: int = 0
    public_train_rows: int = 0
    holdout_fraction: float = 0.0


def loss_bound_for(kind: str, classes: int) -> float:
    """Public clipping bound L of the per-example loss in the DP evaluation queries: the squared
    error (scaled units) is clipped at 0.25, i.e. errors beyond half the declared range count as
    half the range, which keeps the noise 4x lower than the trivial bound 1; cross-entropy is
    clipped at max(4, 2 ln K)."""
    return REGRESSION_ERROR_BOUND if kind == "regressor" else max(4.0, 2.0 * math.log(classes))


def model_build(
    algorithm: str, width: int, outputs: int, hidden_sizes: list[int] | None, generator: SecureRandom
) -> nn.Sequential:
    if algorithm == "dp-mlp-classifier":
        return mlp_build([width, *(hidden_sizes or []), outputs], generator=generator)
    # Convex single-layer models start at zero (no random init to depend on); a regressor starts
    # at the middle of the target's declared range, which is public.
    model = mlp_build([width, outputs], zero_init=True)
    if algorithm == "dp-linear-regression":
        layer = model[0]
        assert isinstance(layer, nn.Linear)  # mlp_build of [inputs, outputs] is that one Linear layer
        with torch.no_grad():
            layer.bias.fill_(0.5)
    return model


def predict(model: nn.Sequential, x: torch.Tensor, kind: str, classes: int) -> torch.Tensor:
    """Class probabilities [n, K] for a classifier, the scaled prediction [n] for a regressor."""
    with torch.no_grad():
        z = model(x)
        if kind == "regressor":
            # The target's declared range is public: predictions outside it are clipped.
            return z[:, 0].clamp(0.0, 1.0)
        if classes == 2:
            p = torch.sigmoid(z[:, 0])
            return torch.stack([1 - p, p], dim=1)
        return torch.softmax(z, dim=1)


def gaussian(size: int, std: float, generator: SecureRandom) -> torch.Tensor:
    """N(0, std²) draws for directly released values, float64, made like Opacus's secure mode
    (four draws summed, halved, which blurs the low bits of any one draw) from the job's
    SecureRandom."""
    if std == 0:
        return torch.zeros(size, dtype=torch.float64)
    return generator.normal((4, size), std, dtype=torch.float64).sum(0) * 0.5


def eval_sums(
    model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, *, kind: str, loss: str, loss_bound: float
) -> np.ndarray:
    """Exact (private) sums over the rows, each row's terms in [0, 1]: [Σ min(loss, L)/L,
    Σ correct, n] for a classifier, [Σ min(err², L)/L, n] for a regressor (err of the prediction
    clipped to [0, 1])."""
    totals = np.zeros(3 if kind == "classifier" else 2)
    with torch.no_grad():
        for start in range(0, len(x), EVAL_CHUNK):
            xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
            z = model(xb)
            if kind == "classifier":
                losses = per_example_loss(z, yb, loss).clamp(max=loss_bound) / loss_bound
                guess = (z[:, 0] > 0).long() if loss == "bce" else z.argmax(1)
                totals[0] += float(losses.double().sum())
                totals[1] += float((guess == yb).double().sum())
                totals[2] += len(xb)
            else:
                err = (z[:, 0].clamp(0.0, 1.0) - yb).pow(2).clamp(max=loss_bound) / loss_bound
                totals[0] += float(err.double().sum())
                totals[1] += len(xb)
    return totals


class _DPEvaluator:
    """The per-epoch DP evaluation queries and their post-processing."""

    def __init__(self, *, kind: str, loss: str, loss_bound: float, sigma: float, generator: SecureRandom):
        self.kind, self.loss, self.loss_bound = kind, loss, loss_bound
        self.dims = 3 if kind == "classifier" else 2
        # Each row's vector has every entry in [0, 1]; dividing by sqrt(dims) makes its L2 norm <= 1.
        self.norm = math.sqrt(self.dims)
        self.sigma = sigma
        self.generator = generator
        self.counts: list[float] = []

    @property
    def noise_std(self) -> float:
        """Std of the noise on each released raw sum (public)."""
        return self.sigma * self.norm

    def release(self, model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float | None]:
        """One Gaussian mechanism; returns (DP loss, DP accuracy or None)."""
        exact = eval_sums(model, x, y, kind=self.kind, loss=self.loss, loss_bound=self.loss_bound) / self.norm
        noisy = (exact + gaussian(self.dims, self.sigma, self.generator).numpy()) * self.norm
        self.counts.append(float(noisy[-1]))
        # The row count is the same every epoch: averaging its noisy releases is free and steadier.
        count = max(float(np.mean(self.counts)), 1.0)
        if self.kind == "classifier":
            loss = min(max(self.loss_bound * noisy[0] / count, 0.0), self.loss_bound)
            return float(loss), float(min(max(noisy[1] / count, 0.0), 1.0))
        return float(min(max(self.loss_bound * noisy[0] / count, 0.0), self.loss_bound)), None


def _public_metrics(result: TrainResult, x: torch.Tensor, y: torch.Tensor, classes: int) -> list[dict[str, Any]]:
    """Exact metrics on the buyer's own evaluation file (public data)."""
    n = len(x)
    out: list[dict[str, Any]] = [
        {
            "name": "eval_rows",
            "value": n,
            "source": "public",
            "description": "Rows of the evaluation file with a usable target.",
        }
    ]
    if n == 0:
        return out
    pred = predict(result.model, x, result.kind, classes)
    if result.kind == "classifier":
        probs = pred.double().clamp(min=1e-12)
        accuracy = float((pred.argmax(1) == y).double().mean())
        log_loss = float(-probs[torch.arange(n), y].log().mean())
        counts = torch.bincount(y, minlength=classes)
        majority = float(counts.max()) / n
        out += [
            {
                "name": "eval_accuracy",
                "value": accuracy,
                "source": "public",
                "description": "Accuracy on the evaluation file.",
            },
            {
                "name": "eval_log_loss",
                "value": log_loss,
                "source": "public",
                "description": "Mean cross-entropy on the evaluation file.",
            },
            {
                "name": "eval_majority_baseline",
                "value": majority,
                "source": "public",
                "description": "Accuracy of always predicting the evaluation file's most frequent class.",
            },
        ]
        return out
    span = result.target.high - result.target.low
    pred_u = pred.double() * span + result.target.low
    true_u = y.double() * span + result.target.low
    err = pred_u - true_u
    mse = float(err.pow(2).mean())
    var = float((true_u - true_u.mean()).pow(2).mean())
    out += [
        {
            "name": "eval_mse",
            "value": mse,
            "source": "public",
            "description": "Mean squared error on the evaluation file (target units).",
        },
        {
            "name": "eval_rmse",
            "value": math.sqrt(mse),
            "source": "public",
            "description": "Root mean squared error (target units).",
        },
        {
            "name": "eval_mae",
            "value": float(err.abs().mean()),
            "source": "public",
            "description": "Mean absolute error (target units).",
        },
        {
            "name": "eval_r2",
            "value": (1 - mse / var) if var > 0 else None,
            "source": "public",
            "description": "Coefficient of determination on the evaluation file "
            "(the target's values clipped to its declared bounds).",
        },
    ]
    return out


def train(
    *,
    algorithm: str,
    parameters: dict[str, Any],
    schema: dict[str, Any],
    data_file: str,
    data_format: str,
    eval_file: str | None,
    events: Events,
    generator: SecureRandom,
    public_rows: int,
    holdout: dict[str, Any] | None = None,
) -> TrainResult:
    """Load, preprocess, split the holdout, calibrate on the public row count, train with DP-SGD
    and evaluate. ``generator`` drives the sampling, the initial weights and every noise draw.
    No row can fail the job: bad cells and targets take public defaults, and an empty file trains
    on noise alone."""
    from .params import ALGORITHMS

    kind = ALGORITHMS[algorithm].kind
    epochs = parameters["epochs"]
    fraction = float(holdout["fraction"]) if holdout else 0.0
    public_train_rows, _ = public_split(public_rows, fraction)
    events.progress("loading", epoch=0, epochs=epochs, step=0, steps=0, epsilon=0.0, force=True)
    features = preprocess.feature_specs(schema, parameters["features"])
    target = preprocess.target_spec(schema, parameters["target"], kind)
    table, rows = preprocess.table_read(data_file, data_format, [*parameters["features"], parameters["target"]])
    y_np = preprocess.target_coerced(table, target)
    x_np = preprocess.features_matrix(table, features)
    del table
    held = holdout_split(rows, fraction, holdout["key"]) if holdout and fraction > 0 else np.zeros(rows, dtype=bool)
    x = torch.from_numpy(x_np[~held])
    y = torch.from_numpy(y_np[~held])
    x_eval, y_eval = (torch.from_numpy(x_np[held]), torch.from_numpy(y_np[held])) if fraction > 0 else (x, y)
    del x_np, y_np
    evaluated_on = "holdout" if fraction > 0 else "training"
    events.log("Data loaded and preprocessed from the declared schema.")

    classes = len(target.classes) if kind == "classifier" else 0
    outputs = 1 if kind == "regressor" or classes == 2 else classes
    loss = "mse" if kind == "regressor" else ("bce" if classes == 2 else "ce")
    plan = accounting.training_plan(
        rows=public_train_rows,
        batch_size=parameters["batch_size"],
        epochs=epochs,
        epsilon=parameters["epsilon"],
        delta=parameters["delta"],
        mechanism=parameters["accountant"],
        private_metrics=parameters["private_metrics"],
    )
    events.log(
        f"Noise calibrated with the {plan.mechanism.upper()} accountant: noise multiplier {plan.noise_multiplier:.4g}, "
        f"sample rate {plan.sample_rate:.4g}, {plan.steps} steps."
    )
    curve_at = accounting.curve_steps(
        plan.steps, every=plan.steps_per_epoch, points=accounting.curve_points(plan.mechanism)
    )
    curve_eps = plan.epsilons_at(curve_at)

    model = model_build(algorithm, preprocess.input_width(features), outputs, parameters.get("hidden_sizes"), generator)
    dp = FastDP(
        model,
        loss=loss,
        max_grad_norm=parameters["max_grad_norm"],
        noise_multiplier=plan.noise_multiplier,
        expected_batch_size=plan.expected_batch_size,
        learning_rate=parameters["learning_rate"],
        generator=generator,
    )
    loss_bound = loss_bound_for(kind, max(classes, 2))
    evaluator = (
        _DPEvaluator(kind=kind, loss=loss, loss_bound=loss_bound, sigma=plan.eval_noise_multiplier, generator=generator)
        if plan.eval_steps
        else None
    )
    accountant = accounting.create(plan.mechanism)
    result = TrainResult(
        model=model,
        kind=kind,
        loss=loss,
        features=features,
        target=target,
        plan=plan,
        epsilon_accounted=0.0,
        loss_bound=loss_bound,
        eval_noise_std=evaluator.noise_std if evaluator else 0.0,
        evaluated_on=evaluated_on,
        public_rows=public_rows,
        public_train_rows=public_train_rows,
        holdout_fraction=fraction,
    )
    result.epsilon_curve = [[0, 0.0], *[[s, e] for s, e in zip(curve_at, curve_eps, strict=True)]]
    eps_index = 0

    def eps_so_far(step: int) -> float:
        # The curve's next point at or after ``step``: exact at curve points and epoch ends, an
        # upper bound in between (epsilon only grows).
        nonlocal eps_index
        while eps_index < len(curve_at) - 1 and curve_at[eps_index] < step:
            eps_index += 1
        return curve_eps[eps_index] if step > 0 else 0.0

    n = len(x)
    report_every = max(1, int(plan.steps * PROGRESS_EVERY))
    step = 0
    model.train()
    for epoch in range(1, epochs + 1):
        for _ in range(plan.steps_per_epoch):
            idx = poisson_batch(n, plan.sample_rate, generator)
            dp.step(x[idx], y[idx])
            accountant.step(noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate)
            step += 1
            if step % plan.steps_per_epoch and step % report_every == 0:
                events.progress(
                    "training",
                    epoch=epoch,
                    epochs=epochs,
                    step=step,
                    steps=plan.steps,
                    epsilon=eps_so_far(step),
                    force=True,
                )
        dp_loss = dp_accuracy = None
        if evaluator is not None:
            dp_loss, dp_accuracy = evaluator.release(model, x_eval, y_eval)
            accountant.step(noise_multiplier=plan.eval_noise_multiplier, sample_rate=1.0)
        result.curve.append(
            {"epoch": epoch, "step": step, "epsilon": eps_so_far(step), "loss": dp_loss, "accuracy": dp_accuracy}
        )
        events.progress(
            "training", epoch=epoch, epochs=epochs, step=step, steps=plan.steps, epsilon=eps_so_far(step), force=True
        )

    result.epsilon_accounted = accounting.accountant_epsilon(accountant, plan.delta)
    if result.epsilon_accounted > parameters["epsilon"] + 1e-9:
        # Calibration guarantees this cannot happen; never release if it somehow did.
        raise RuntimeError("accounted epsilon above the target")

    events.progress(
        "evaluating",
        epoch=epochs,
        epochs=epochs,
        step=step,
        steps=plan.steps,
        epsilon=result.epsilon_accounted,
        force=True,
    )
    rows_label = "holdout rows" if evaluated_on == "holdout" else "training rows (no holdout was set)"
    if evaluator is not None:
        last = result.curve[-1]
        if kind == "classifier":
            result.metrics += [
                {
                    "name": "dp_accuracy",
                    "value": last["accuracy"],
                    "source": "dp",
                    "evaluated_on": evaluated_on,
                    "description": f"Accuracy on the private {rows_label} after the last epoch "
                    "(Gaussian mechanism; noisy).",
                },
                {
                    "name": "dp_loss",
                    "value": last["loss"],
                    "source": "dp",
                    "evaluated_on": evaluated_on,
                    "description": f"Mean cross-entropy (each example's clipped at {loss_bound:.3g}) "
                    f"on the private {rows_label} (noisy).",
                },
            ]
        else:
            span = target.high - target.low
            result.metrics += [
                {
                    "name": "dp_mse_scaled",
                    "value": last["loss"],
                    "source": "dp",
                    "evaluated_on": evaluated_on,
                    "description": f"Mean squared error on the private {rows_label}, target and prediction "
                    f"scaled to [0, 1], each example's clipped at {loss_bound:g} (noisy).",
                },
                {
                    "name": "dp_rmse",
                    "value": math.sqrt(last["loss"]) * span,
                    "source": "dp",
                    "evaluated_on": evaluated_on,
                    "description": f"Root mean squared error in target units on the private {rows_label} "
                    "(post-processing of the DP MSE).",
                },
            ]
    if eval_file:
        result.metrics += _eval_file_metrics(result, schema, parameters, eval_file, classes)
    return result


def _eval_file_metrics(
    result: TrainResult, schema: dict[str, Any], parameters: dict[str, Any], eval_file: str, classes: int
) -> list[dict[str, Any]]:
    try:
        table, _ = preprocess.table_read(eval_file, "csv", [*parameters["features"], parameters["target"]])
    except InvalidData as exc:
        # The buyer's own file, not the provider's: reported as the buyer's input.
        raise InvalidParameters("Evaluation file: " + exc.message) from None
    kept, y_np = preprocess.target_values(table, result.target)
    x = torch.from_numpy(preprocess.features_matrix(table, result.features, rows=kept))
    return _public_metrics(result, x, torch.from_numpy(y_np), classes)
