"""The per-dataset privacy budget as the marketplace books it: reserve before a job runs, charge
it after, release what a job never used. The same epsilon is reserved on chain by the job's order,
and the receipt (or refund) settles it there.

Delta composes across jobs as epsilon does (basic composition), so each dataset also has a
cumulative delta cap (``Dataset.delta_total``): a job reserves its delta beside its epsilon and is
refused when either would pass its cap. A charged job is charged exactly what it reserved: the
amount released never depends on what the runner saw."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from common.errors import Conflict
from compute_to_data.models import ComputeJob, PrivacyBudget
from marketplace.models import Dataset

EPSILON_QUANTUM = Decimal("0.0001")  # the precision orders carry (and a multiple of the chain's 1e-6)


def delta_decimal(value: float | Decimal) -> Decimal:
    """Delta as booked: the shortest decimal that reads back as the float (1e-05 -> 0.00001)."""
    return Decimal(repr(float(value)))


def delta_total_of(dataset: Dataset) -> Decimal:
    """The dataset's cumulative delta cap, as booked."""
    return delta_decimal(dataset.delta_total)


def epsilon_round_up(value: float | Decimal) -> Decimal:
    """Epsilon as booked: rounded up, never down, to the order's precision."""
    return Decimal(str(value)).quantize(EPSILON_QUANTUM, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class BudgetSummary:
    epsilon_total: Decimal
    epsilon_per_job: Decimal
    delta: float
    epsilon_reserved: Decimal
    epsilon_spent: Decimal
    delta_total: Decimal = Decimal("0")
    delta_reserved: Decimal = Decimal("0")
    delta_spent: Decimal = Decimal("0")

    @property
    def epsilon_left(self) -> Decimal:
        return max(self.epsilon_total - self.epsilon_reserved - self.epsilon_spent, Decimal("0"))

    @property
    def delta_left(self) -> Decimal:
        return max(self.delta_total - self.delta_reserved - self.delta_spent, Decimal("0"))

    @property
    def delta_used_fraction(self) -> float:
        if not self.delta_total:
            return 1.0
        return float(min((self.delta_reserved + self.delta_spent) / self.delta_total, Decimal("1")))

    @property
    def used_fraction(self) -> float:
        if not self.epsilon_total:
            return 1.0
        return float(min((self.epsilon_reserved + self.epsilon_spent) / self.epsilon_total, Decimal("1")))


def budget_summary(*, dataset: Dataset) -> BudgetSummary:
    row = PrivacyBudget.objects.filter(dataset=dataset).first()
    return BudgetSummary(
        epsilon_total=dataset.epsilon_total,
        epsilon_per_job=dataset.epsilon_per_job,
        delta=dataset.delta,
        epsilon_reserved=row.epsilon_reserved if row else Decimal("0"),
        epsilon_spent=row.epsilon_spent if row else Decimal("0"),
        delta_total=delta_total_of(dataset),
        delta_reserved=row.delta_reserved if row else Decimal("0"),
        delta_spent=row.delta_spent if row else Decimal("0"),
    )


def _delta_refusal(left: Decimal, asked: Decimal) -> Conflict:
    left = max(left, Decimal("0"))
    return Conflict(
        f"The dataset's cumulative delta budget has {left.normalize():e} left; this job asks for "
        f"{asked.normalize():e}.",
        code="budget_exhausted",
        extra={"delta_left": format(left.normalize(), "e")},
    )


def _locked_budget(dataset_id: int) -> PrivacyBudget:
    """The dataset's budget row under SELECT ... FOR UPDATE (created on first use)."""
    PrivacyBudget.objects.get_or_create(dataset_id=dataset_id)
    return PrivacyBudget.objects.select_for_update().get(dataset_id=dataset_id)


def budget_reserve(*, job: ComputeJob) -> PrivacyBudget:
    """Reserve the job's epsilon and delta, or raise ``Conflict`` (``budget_exhausted``) with what is
    left.

    Takes the budget row lock itself; call inside ``transaction.atomic`` with the job row locked."""
    budget = _locked_budget(job.dataset_id)
    dataset = Dataset.objects.only("epsilon_total", "delta", "delta_total").get(pk=job.dataset_id)
    left = dataset.epsilon_total - budget.epsilon_reserved - budget.epsilon_spent
    if job.epsilon > left:
        left = max(left, Decimal("0"))
        raise Conflict(
            f"The dataset's privacy budget has epsilon {left} left; this job asks for {job.epsilon}.",
            code="budget_exhausted",
            extra={"epsilon_left": str(left)},
        )
    delta = delta_decimal(job.delta)
    delta_left = delta_total_of(dataset) - budget.delta_reserved - budget.delta_spent
    if delta > delta_left:
        raise _delta_refusal(delta_left, delta)
    budget.epsilon_reserved += job.epsilon
    budget.delta_reserved += delta
    budget.save(update_fields=["epsilon_reserved", "delta_reserved", "updated_at"])
    job.budget_state = ComputeJob.Budget.RESERVED
    return budget


def budget_charge(*, job: ComputeJob) -> None:
    """Turn the job's reservation into spent epsilon and delta, exactly as reserved: the charge
    never depends on what the runner saw or reported.

    Call inside ``transaction.atomic`` with the job row locked; sets but does not save the job."""
    if job.budget_state != ComputeJob.Budget.RESERVED:
        return
    spent = job.epsilon
    delta = delta_decimal(job.delta)
    budget = _locked_budget(job.dataset_id)
    budget.epsilon_reserved -= job.epsilon
    budget.epsilon_spent += spent
    budget.delta_reserved -= delta
    budget.delta_spent += delta
    budget.save(update_fields=["epsilon_reserved", "epsilon_spent", "delta_reserved", "delta_spent", "updated_at"])
    job.budget_state = ComputeJob.Budget.CHARGED
    job.epsilon_spent = spent


def budget_release(*, job: ComputeJob) -> None:
    """Give the whole reservation back (the job never touched data).

    Call inside ``transaction.atomic`` with the job row locked; sets but does not save the job."""
    if job.budget_state != ComputeJob.Budget.RESERVED:
        return
    budget = _locked_budget(job.dataset_id)
    budget.epsilon_reserved -= job.epsilon
    budget.delta_reserved -= delta_decimal(job.delta)
    budget.save(update_fields=["epsilon_reserved", "delta_reserved", "updated_at"])
    job.budget_state = ComputeJob.Budget.RELEASED
    job.epsilon_spent = Decimal("0")


def budget_uncharge(*, job: ComputeJob) -> None:
    """Give a charged job's epsilon and delta back: its buyer reclaimed the order on chain after the
    deadline (the chain released the reservation, so the books do too).

    Call inside ``transaction.atomic`` with the job row locked; sets but does not save the job."""
    if job.budget_state != ComputeJob.Budget.CHARGED:
        return
    budget = _locked_budget(job.dataset_id)
    budget.epsilon_spent -= job.epsilon
    budget.delta_spent -= delta_decimal(job.delta)
    budget.save(update_fields=["epsilon_spent", "delta_spent", "updated_at"])
    job.budget_state = ComputeJob.Budget.RELEASED
    job.epsilon_spent = Decimal("0")


def budget_check_left(*, dataset: Dataset, epsilon: Decimal, delta: float | None = None) -> None:
    """Refuse up front (before paying) a job asking more than the budget has left."""
    summary = budget_summary(dataset=dataset)
    if epsilon > summary.epsilon_left:
        raise Conflict(
            f"The dataset's privacy budget has epsilon {summary.epsilon_left} left; this job asks for {epsilon}.",
            code="budget_exhausted",
            extra={"epsilon_left": str(summary.epsilon_left)},
        )
    if delta is not None and delta_decimal(delta) > summary.delta_left:
        raise _delta_refusal(summary.delta_left, delta_decimal(delta))
