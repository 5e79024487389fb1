"""Noise calibration and privacy accounting, all through Opacus's accountants.

Every release is a (possibly Poisson-subsampled) Gaussian mechanism recorded as an Opacus history
entry ``(noise_multiplier, sample_rate, steps)``: DP-SGD steps at ``sample_rate = q``, DP evaluation
and statistics queries at ``sample_rate = 1`` (no subsampling). Composition is order-independent,
so epsilons are computed on a history with equal entries merged, which keeps the PRV accountant
(one discretised PRV per distinct entry) fast.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opacus.accountants import RDPAccountant, create_accountant
from opacus.accountants.accountant import IAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

from .errors import InvalidParameters

History = list[tuple[float, float, int]]
# With private_metrics on, training is calibrated for (1 - share) of epsilon and the evaluation
# queries get whatever keeps the composition within epsilon.
EVAL_EPSILON_SHARE = 0.1
# Same stopping rule as Opacus's get_noise_multiplier: stop when the epsilon of the upper sigma
# is within this of the target (and never above it).
EPSILON_TOLERANCE = 0.01
MAX_SIGMA = 1e7


def _quiet_epsilon(accountant: IAccountant, delta: float) -> float:
    with warnings.catch_warnings():
        # RDP warns when the optimal order is at the end of its alpha grid; PRV divides by zero
        # inside log() for sample_rate 1. Neither changes the (upper-bound) result.
        warnings.simplefilter("ignore")
        with _numpy_quiet():
            return float(accountant.get_epsilon(delta=delta))


class _numpy_quiet:
    def __enter__(self) -> None:
        import numpy as np

        self._old = np.seterr(all="ignore")

    def __exit__(self, *exc: object) -> None:
        import numpy as np

        np.seterr(**self._old)


def merged(history: Iterable[tuple[float, float, int]]) -> History:
    """``history`` with entries of equal (noise multiplier, sample rate) summed, zero-step ones
    dropped, in first-seen order."""
    totals: dict[tuple[float, float], int] = {}
    for sigma, q, steps in history:
        if steps > 0:
            totals[(float(sigma), float(q))] = totals.get((float(sigma), float(q)), 0) + int(steps)
    return [(sigma, q, steps) for (sigma, q), steps in totals.items()]


def epsilon_of(mechanism: str, history: Iterable[tuple[float, float, int]], delta: float) -> float:
    """The Opacus accountant's epsilon at ``delta`` after the mechanisms in ``history``
    (0 for an empty history)."""
    entries = merged(history)
    if not entries:
        return 0.0
    accountant = create_accountant(mechanism=mechanism)
    accountant.history = entries
    return _quiet_epsilon(accountant, delta)


@functools.lru_cache(maxsize=256)
def _unit_rdp(sample_rate: float, noise_multiplier: float) -> Any:
    """Opacus's RDP of one step at the RDPAccountant's default orders (read-only array)."""
    with warnings.catch_warnings(), _numpy_quiet():
        warnings.simplefilter("ignore")
        unit = rdp_analysis.compute_rdp(
            q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS
        )
    unit.setflags(write=False)
    return unit


def search_epsilon(mechanism: str, history: Iterable[tuple[float, float, int]], delta: float) -> float:
    """``epsilon_of`` for noise searches and curves. For RDP the one-step RDP vectors are cached
    and scaled by the step counts: Opacus's ``compute_rdp`` is exactly ``steps`` times the
    one-step value and RDPAccountant sums the entries, so this is the accountant's arithmetic
    (a search re-evaluates the same fixed entries dozens of times, and at a large sample rate
    each evaluation takes ~0.4 s). PRV goes to the accountant."""
    entries = merged(history)
    if mechanism != "rdp":
        return epsilon_of(mechanism, entries, delta)
    if not entries:
        return 0.0
    rdp = sum(_unit_rdp(q, sigma) * steps for sigma, q, steps in entries)
    with warnings.catch_warnings(), _numpy_quiet():
        warnings.simplefilter("ignore")
        eps, _ = rdp_analysis.get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    return float(eps)


def accountant_epsilon(accountant: IAccountant, delta: float) -> float:
    """Epsilon of a live Opacus accountant (its history merged first; see the module docstring)."""
    return epsilon_of(accountant.mechanism(), accountant.history, delta)


def opacus_noise_multiplier(
    *,
    epsilon: float,
    delta: float,
    sample_rate: float,
    epochs: int | None = None,
    steps: int | None = None,
    mechanism: str,
) -> float:
    """Opacus's own calibration (``get_noise_multiplier``), as ``make_private_with_epsilon`` calls
    it. Raises InvalidParameters when the budget is too small for it."""
    try:
        with warnings.catch_warnings(), _numpy_quiet():
            warnings.simplefilter("ignore")
            return float(
                get_noise_multiplier(
                    target_epsilon=epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    epochs=epochs,
                    steps=steps,
                    accountant=mechanism,
                    epsilon_tolerance=EPSILON_TOLERANCE,
                )
            )
    except ValueError:
        raise InvalidParameters(
            "epsilon is too small to calibrate the noise for these settings (try the 'prv' accountant)."
        ) from None


def _least_noise(eps: Callable[[float], float], target: float) -> float:
    """Smallest sigma (to Opacus's epsilon tolerance) with ``eps(sigma) <= target``, for an
    ``eps`` that decreases in sigma; the doubling-then-bisection of get_noise_multiplier."""
    sigma_low, sigma_high, eps_high = 0.0, 0.5, math.inf
    while eps_high > target:
        sigma_high *= 2
        if sigma_high > MAX_SIGMA:
            raise InvalidParameters(
                "epsilon is too small to calibrate the noise for these settings (try the 'prv' accountant)."
            )
        eps_high = eps(sigma_high)
    while target - eps_high > EPSILON_TOLERANCE and sigma_high - sigma_low > 1e-9 * sigma_high:
        sigma = (sigma_low + sigma_high) / 2
        value = eps(sigma)
        if value < target:
            sigma_high, eps_high = sigma, value
        else:
            sigma_low = sigma
    return sigma_high


def calibrate(
    *, mechanism: str, epsilon: float, delta: float, sample_rate: float, steps: int, fixed: History | None = None
) -> float:
    """Smallest noise multiplier (to Opacus's tolerance) for ``steps`` Gaussian steps at
    ``sample_rate`` such that, composed with the ``fixed`` mechanisms, the accountant's epsilon
    is <= ``epsilon``. Same search as Opacus's get_noise_multiplier, over a composed history."""
    fixed = list(fixed or [])
    if steps <= 0:
        return 0.0
    return _least_noise(lambda sigma: search_epsilon(mechanism, [*fixed, (sigma, sample_rate, steps)], delta), epsilon)


@dataclass(frozen=True)
class TrainingPlan:
    """The public shape of a DP-SGD run and its calibrated noise.

    ``sample_rate`` and ``steps_per_epoch`` follow Opacus (``1 / len(DataLoader)`` with
    ``len = ceil(rows / batch_size)``); ``expected_batch_size = int(rows * sample_rate)`` like
    Opacus's DPOptimizer. ``rows`` is the owner's *public* declared row count (of the training
    part), never the private file's: every field here is public. ``eval_noise_multiplier`` is 0
    when there are no DP evaluation queries
    (one per epoch, at sample rate 1, L2 sensitivity 1 after scaling)."""

    sample_rate: float
    steps_per_epoch: int
    epochs: int
    expected_batch_size: int
    noise_multiplier: float
    eval_noise_multiplier: float
    mechanism: str
    delta: float

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def eval_steps(self) -> int:
        return self.epochs if self.eval_noise_multiplier > 0 else 0

    def history_at(self, step: int) -> History:
        """Mechanisms run after ``step`` training steps (evaluations happen at each epoch end)."""
        history: History = [(self.noise_multiplier, self.sample_rate, step)]
        if self.eval_steps:
            history.append((self.eval_noise_multiplier, 1.0, min(step // self.steps_per_epoch, self.epochs)))
        return history

    def epsilon_at(self, step: int) -> float:
        return epsilon_of(self.mechanism, self.history_at(step), self.delta)

    def epsilons_at(self, steps: list[int]) -> list[float]:
        """``epsilon_at`` for many steps (through ``search_epsilon``: cached RDP arithmetic)."""
        return [search_epsilon(self.mechanism, self.history_at(step), self.delta) for step in steps]


def training_plan(
    *, rows: int, batch_size: int, epochs: int, epsilon: float, delta: float, mechanism: str, private_metrics: bool
) -> TrainingPlan:
    """Calibrate DP-SGD for ``rows`` examples: the owner's public declared (approximate) row count
    of the training rows, never the private file's exact count, so that nothing derived here
    (sample rate, steps, expected batch size, noise) depends on the private data. Poisson sampling
    then runs over the real rows at this public rate, which is what the accountant assumes.

    Without private metrics the noise multiplier is Opacus's ``make_private_with_epsilon``
    choice; should Opacus's step count (``int(epochs / sample_rate)``, which float rounding can
    make one short) leave the steps actually run above the target, it is re-searched for those
    steps. With private metrics the training noise is Opacus's choice for ``(1 -
    EVAL_EPSILON_SHARE) * epsilon`` and the evaluation queries get the least noise that keeps the
    composition within epsilon. The result is checked with the Opacus accountant itself."""
    if rows <= 0:
        raise ValueError("rows must be positive")
    steps_per_epoch = math.ceil(rows / batch_size)
    sample_rate = 1 / steps_per_epoch
    expected_batch_size = max(1, int(rows * sample_rate))
    steps = epochs * steps_per_epoch
    eval_sigma = 0.0
    if private_metrics:
        # Training gets the noise Opacus would pick for (1 - share) of epsilon on its own; the
        # evaluation queries then get the least noise that keeps the composition within epsilon.
        # Under RDP/PRV composition that leaves them far more than a share of epsilon computed
        # alone would (which, near the accountant's floor, would drown the metrics).
        sigma = opacus_noise_multiplier(
            epsilon=(1 - EVAL_EPSILON_SHARE) * epsilon,
            delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            mechanism=mechanism,
        )
        eval_sigma = _least_noise(
            lambda s: search_epsilon(mechanism, [(sigma, sample_rate, steps), (s, 1.0, epochs)], delta), epsilon
        )
    else:
        sigma = opacus_noise_multiplier(
            epsilon=epsilon, delta=delta, sample_rate=sample_rate, epochs=epochs, mechanism=mechanism
        )
        if epsilon_of(mechanism, [(sigma, sample_rate, steps)], delta) > epsilon:
            sigma = calibrate(mechanism=mechanism, epsilon=epsilon, delta=delta, sample_rate=sample_rate, steps=steps)
    history = [(sigma, sample_rate, steps), (eval_sigma, 1.0, epochs if private_metrics else 0)]
    # The release is checked with the accountant object itself; a search's arithmetic must never
    # be the last word.
    while epsilon_of(mechanism, history, delta) > epsilon:
        sigma *= 1.001
        history[0] = (sigma, sample_rate, steps)
    return TrainingPlan(
        sample_rate=sample_rate,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        expected_batch_size=expected_batch_size,
        noise_multiplier=sigma,
        eval_noise_multiplier=eval_sigma,
        mechanism=mechanism,
        delta=delta,
    )


def curve_points(mechanism: str) -> int:
    """Epsilon-curve points to compute, besides the origin (<= 200 in all): a PRV epsilon costs
    ~0.1 s, an RDP one (cached arithmetic) microseconds."""
    return 199 if mechanism == "rdp" else 40


def curve_steps(total: int, *, every: int, points: int = 200) -> list[int]:
    """Step numbers in 1..total for the epsilon curve: every multiple of ``every`` (epoch ends,
    at most 50 of them), ``total``, and evenly spread steps up to ``points`` in all."""
    if total <= 0:
        return []
    marks = set(range(every, total + 1, every)) if every > 0 else set()
    marks.add(total)
    room = points - len(marks)
    if room > 0:
        stride = max(1, math.ceil(total / room))
        marks.update(range(stride, total + 1, stride))
    ordered = sorted(marks)
    while len(ordered) > points:
        # Drop the non-epoch-end points closest to their neighbour until it fits.
        extras = [s for s in ordered if s != total and (every <= 0 or s % every)]
        if not extras:
            break
        ordered.remove(extras[len(extras) // 2])
    return ordered


def create(mechanism: str) -> IAccountant:
    return create_accountant(mechanism=mechanism)
