"""The provider's dashboard: per dataset the privacy budget and the earnings, the jobs run on
their data over time, and the latest jobs. Reads only; database only (no call to the node).

Money comes from the chain-backed order rows, in the payment token's units:

- **paid**: what receipts released to the provider, the ``providerAmount`` of each
  ``ReceiptRecorded`` event (the order's amount minus the marketplace fee), kept in ``Order.receipt``;
- **fees**: the marketplace's share of those same orders (``feeAmount``);
- **in escrow**: orders paid on chain and not settled yet (``confirmed``): the whole amount the
  datatoken holds until a receipt (to the provider, less the fee) or a refund (to the buyer);
- **refunded**: what refunds returned to buyers (jobs that ended before touching the data).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate
from django.utils import timezone

from chain.models import ChainListing, Order
from chain.units import units_to_epsilon, units_to_price
from compute_to_data.models import ComputeJob, PrivacyBudget
from compute_to_data.services.budget import BudgetSummary, delta_total_of
from marketplace.models import Dataset, User

DEFAULT_DAYS = 30
MAX_DAYS = 365
RECENT_JOBS = 20
ZERO = Decimal("0")

# Job statuses as the dashboard groups them (order: how the charts stack them).
JOB_GROUPS: dict[str, tuple[str, frozenset[str]]] = {
    "finished": ("Finished", frozenset({ComputeJob.Status.FINISHED})),
    "active": (
        "In progress",
        frozenset(
            {
                ComputeJob.Status.CREATED,
                ComputeJob.Status.PAID,
                ComputeJob.Status.QUEUED,
                ComputeJob.Status.PROVISIONING,
                ComputeJob.Status.RUNNING,
                ComputeJob.Status.PUBLISHING,
            }
        ),
    ),
    "failed": ("Failed", frozenset({ComputeJob.Status.FAILED})),
    "cancelled": ("Cancelled", frozenset({ComputeJob.Status.CANCELLED})),
    "rejected": ("Rejected", frozenset({ComputeJob.Status.REJECTED})),
}
_GROUP_OF = {status: group for group, (_label, statuses) in JOB_GROUPS.items() for status in statuses}


def job_group(status: str) -> str:
    return _GROUP_OF.get(status, "active")


@dataclass
class Earnings:
    """Money on orders for one dataset (or all of a token's datasets), in the payment token."""

    token: str
    paid: Decimal = ZERO
    fees: Decimal = ZERO
    in_escrow: Decimal = ZERO
    refunded: Decimal = ZERO
    orders_receipted: int = 0
    orders_in_escrow: int = 0
    orders_refunded: int = 0

    def add(self, other: Earnings) -> None:
        self.paid += other.paid
        self.fees += other.fees
        self.in_escrow += other.in_escrow
        self.refunded += other.refunded
        self.orders_receipted += other.orders_receipted
        self.orders_in_escrow += other.orders_in_escrow
        self.orders_refunded += other.orders_refunded

    @property
    def is_empty(self) -> bool:
        return not (self.orders_receipted or self.orders_in_escrow or self.orders_refunded)


@dataclass
class JobCounts:
    total: int = 0
    by_group: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, n: int) -> None:
        group = job_group(status)
        self.total += n
        self.by_group[group] = self.by_group.get(group, 0) + n


@dataclass
class DatasetFigures:
    dataset: Dataset
    budget: BudgetSummary
    # What the datatoken lets still be ordered (indexed from chain events); None when not on chain.
    epsilon_left_on_chain: Decimal | None
    on_chain: bool
    earnings: Earnings
    jobs: JobCounts


@dataclass(frozen=True)
class DayCounts:
    day: date
    total: int
    by_group: dict[str, int]


@dataclass
class ProviderDashboard:
    datasets: list[DatasetFigures]
    totals: list[Earnings]  # one per payment token
    jobs: JobCounts
    days: int
    since: date
    jobs_per_day: list[DayCounts]
    recent_jobs: list[ComputeJob]

    @property
    def has_jobs(self) -> bool:
        return self.jobs.total > 0


def _budget_of(dataset: Dataset) -> BudgetSummary:
    try:
        row: PrivacyBudget | None = dataset.budget
    except PrivacyBudget.DoesNotExist:
        row = None
    return BudgetSummary(
        epsilon_total=dataset.epsilon_total,
        epsilon_per_job=dataset.epsilon_per_job,
        delta=dataset.delta,
        epsilon_reserved=row.epsilon_reserved if row else ZERO,
        epsilon_spent=row.epsilon_spent if row else ZERO,
        delta_total=delta_total_of(dataset),
        delta_reserved=row.delta_reserved if row else ZERO,
        delta_spent=row.delta_spent if row else ZERO,
    )


def _listing_of(dataset: Dataset) -> ChainListing | None:
    try:
        return dataset.chain_listing
    except ChainListing.DoesNotExist:
        return None


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else ZERO
    except ArithmeticError:
        return ZERO


def _earnings_by_dataset(provider: User, tokens: dict[int, str]) -> dict[int, Earnings]:
    """Per dataset of ``provider``: sums of the orders by settlement state (two grouped queries)."""
    earnings = {pk: Earnings(token=token) for pk, token in tokens.items()}
    orders = Order.objects.filter(dataset__owner=provider)
    grouped = (
        orders.filter(status__in=[Order.Status.CONFIRMED, Order.Status.REFUNDED])
        .values("dataset_id", "status")
        .annotate(n=Count("id"), amount=Sum("amount_units"))
        .order_by()
    )
    for row in grouped:
        e = earnings.get(row["dataset_id"])
        if e is None:
            continue
        amount = units_to_price(row["amount"] or 0)
        if row["status"] == Order.Status.CONFIRMED:
            e.in_escrow += amount
            e.orders_in_escrow += row["n"]
        else:
            e.refunded += amount
            e.orders_refunded += row["n"]
    # The receipt's split is what the chain paid out (ReceiptRecorded), so it is read per order.
    receipted = (
        orders.filter(status=Order.Status.RECEIPTED)
        .annotate(provider_amount=KT("receipt__provider_amount"), fee_amount=KT("receipt__fee_amount"))
        .values_list("dataset_id", "amount_units", "provider_amount", "fee_amount")
    )
    for dataset_id, amount_units, provider_amount, fee_amount in receipted:
        e = earnings.get(dataset_id)
        if e is None:
            continue
        fee = _decimal(fee_amount)
        e.paid += _decimal(provider_amount) if provider_amount not in (None, "") else units_to_price(amount_units) - fee
        e.fees += fee
        e.orders_receipted += 1
    return earnings


def _jobs_by_dataset(provider: User) -> dict[int, JobCounts]:
    counts: dict[int, JobCounts] = defaultdict(JobCounts)
    rows = (
        ComputeJob.objects.filter(dataset__owner=provider)
        .values("dataset_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["dataset_id"]].add(row["status"], row["n"])
    return counts


def _jobs_per_day(provider: User, since: date, until: date) -> list[DayCounts]:
    """Jobs created on ``provider``'s datasets per day (the site's time zone), every day from ``since``
    to ``until``."""
    start = timezone.make_aware(datetime.combine(since, time.min))
    rows = (
        ComputeJob.objects.filter(dataset__owner=provider, created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_day: dict[date, dict[str, int]] = defaultdict(dict)
    for row in rows:
        group = job_group(row["status"])
        per_day[row["day"]][group] = per_day[row["day"]].get(group, 0) + row["n"]
    days = []
    day = since
    while day <= until:
        counts = per_day.get(day, {})
        days.append(DayCounts(day=day, total=sum(counts.values()), by_group=dict(counts)))
        day += timedelta(days=1)
    return days


def recent_jobs_of_provider(*, provider: User, limit: int = RECENT_JOBS) -> QuerySet[ComputeJob]:
    """The latest jobs run on ``provider``'s datasets, with what the dashboard's table shows."""
    return (
        ComputeJob.objects.filter(dataset__owner=provider)
        .select_related("dataset", "buyer", "order")
        .order_by("-created_at", "-id")[:limit]
    )


def provider_dashboard(*, provider: User, days: int = DEFAULT_DAYS) -> ProviderDashboard:
    """Everything the provider's dashboard shows, for ``provider``'s own datasets only.

    ``days`` (1 to ``MAX_DAYS``) is the window of the jobs-per-day series, ending today."""
    days = max(1, min(int(days), MAX_DAYS))
    datasets = list(
        Dataset.objects.filter(owner=provider).select_related("chain_listing", "budget").order_by("-created_at", "-id")
    )
    earnings = _earnings_by_dataset(provider, {d.pk: d.price_token for d in datasets})
    jobs = _jobs_by_dataset(provider)
    figures = []
    totals: dict[str, Earnings] = {}
    all_jobs = JobCounts()
    for dataset in datasets:
        listing = _listing_of(dataset)
        published = listing if listing is not None and listing.state == ChainListing.State.PUBLISHED else None
        dataset_jobs = jobs.get(dataset.pk, JobCounts())
        figures.append(
            DatasetFigures(
                dataset=dataset,
                budget=_budget_of(dataset),
                epsilon_left_on_chain=units_to_epsilon(published.epsilon_left_units) if published is not None else None,
                on_chain=published is not None,
                earnings=earnings[dataset.pk],
                jobs=dataset_jobs,
            )
        )
        totals.setdefault(dataset.price_token, Earnings(token=dataset.price_token)).add(earnings[dataset.pk])
        for group, n in dataset_jobs.by_group.items():
            all_jobs.total += n
            all_jobs.by_group[group] = all_jobs.by_group.get(group, 0) + n
    today = timezone.localdate()
    since = today - timedelta(days=days - 1)
    return ProviderDashboard(
        datasets=figures,
        totals=sorted(totals.values(), key=lambda e: e.token),
        jobs=all_jobs,
        days=days,
        since=since,
        jobs_per_day=_jobs_per_day(provider, since, today),
        recent_jobs=list(recent_jobs_of_provider(provider=provider)),
    )
