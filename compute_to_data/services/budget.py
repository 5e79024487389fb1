"""The per-dataset privacy budget as the marketplace books it: reserve before a job runs, charge
what the accountant spent after, release what a job never used. The same epsilon is reserved on
chain by the job's order, and the receipt (or refund) settles it there."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from compute_to_data.models import ComputeJob, PrivacyBudget
from marketplace.errors import Conflict
from marketplace.models import Dataset

EPSILON_QUANTUM = Decimal("0.0001")  # the precision orders carry (and a multiple of the chain's 1e-6)


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

    @property
    def epsilon_left(self) -> Decimal:
        return max(self.epsilon_total - self.epsilon_reserved - self.epsilon_spent, Decimal("0"))

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
    )


def _locked_budget(dataset_id: int) -> PrivacyBudget:
    """The dataset's budget row under SELECT ... FOR UPDATE (created on first use)."""
    PrivacyBudget.objects.get_or_create(dataset_id=dataset_id)
    return PrivacyBudget.objects.select_for_update().get(dataset_id=dataset_id)


def budget_reserve(*, job: ComputeJob) -> PrivacyBudget:
    """Reserve the job's epsilon, or raise ``Conflict`` (``budget_exhausted``) with the epsilon left.

    Takes the budget row lock itself; call inside ``transaction.atomic`` with the job row locked."""
    budget = _locked_budget(job.dataset_id)
    dataset = Dataset.objects.only("epsilon_total").get(pk=job.dataset_id)
    left = dataset.epsilon_total - budget.epsilon_reserved - budget.epsilon_spent
    if job.epsilon > left:
        left = max(left, Decimal("0"))
        raise Conflict(
            f"The dataset's privacy budget has epsilon {left} left; this job asks for {job.epsilon}.",
            code="budget_exhausted",
            extra={"epsilon_left": str(left)},
        )
    budget.epsilon_reserved += job.epsilon
    budget.save(update_fields=["epsilon_reserved", "updated_at"])
    job.budget_state = ComputeJob.Budget.RESERVED
    return budget


def budget_charge(*, job: ComputeJob, epsilon_spent: Decimal) -> None:
    """Turn the job's reservation into spent epsilon (at most what was reserved).

    Call inside ``transaction.atomic`` with the job row locked; sets but does not save the job."""
    if job.budget_state != ComputeJob.Budget.RESERVED:
        return
    spent = min(epsilon_round_up(epsilon_spent), job.epsilon)
    budget = _locked_budget(job.dataset_id)
    budget.epsilon_reserved -= job.epsilon
    budget.epsilon_spent += spent
    budget.save(update_fields=["epsilon_reserved", "epsilon_spent", "updated_at"])
    job.budget_state = ComputeJob.Budget.CHARGED
    job.epsilon_spent = spent


def budget_release(*, job: ComputeJob) -> None:
    """Give the whole reservation back (the job never touched data).

    Call inside ``transaction.atomic`` with the job row locked; sets but does not save the job."""
    if job.budget_state != ComputeJob.Budget.RESERVED:
        return
    budget = _locked_budget(job.dataset_id)
    budget.epsilon_reserved -= job.epsilon
    budget.save(update_fields=["epsilon_reserved", "updated_at"])
    job.budget_state = ComputeJob.Budget.RELEASED
    job.epsilon_spent = Decimal("0")


def budget_check_left(*, dataset: Dataset, epsilon: Decimal) -> None:
    """Refuse up front (before paying) a job asking more than the budget has left."""
    summary = budget_summary(dataset=dataset)
    if epsilon > summary.epsilon_left:
        raise Conflict(
            f"The dataset's privacy budget has epsilon {summary.epsilon_left} left; this job asks for {epsilon}.",
            code="budget_exhausted",
            extra={"epsilon_left": str(summary.epsilon_left)},
        )
