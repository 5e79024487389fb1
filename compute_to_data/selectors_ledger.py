"""The privacy ledger of a dataset: every release on it (each job whose budget was charged), with
running totals of epsilon and delta against the dataset's caps, each entry checked against what
the chain recorded for its order. Public, like the chain events it mirrors: buyers are not named,
times are coarse (to the hour)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from chain.models import ChainListing, Order
from chain.units import units_to_delta, units_to_epsilon
from compute_to_data.models import ComputeJob
from compute_to_data.services.budget import budget_summary, delta_decimal
from marketplace.models import Dataset

LEDGER_MAX_ENTRIES = 1000


@dataclass(frozen=True)
class LedgerEntry:
    job_id: int
    algorithm: str
    epsilon: Decimal
    delta: float
    accountant: str
    time: datetime | None  # to the hour
    status: str
    epsilon_total_after: Decimal
    delta_total_after: Decimal
    receipt_tx: str | None
    block_number: int | None
    # True: the chain's receipt for the order books the same epsilon and dataset; False: it
    # differs; None: not on chain yet (settlement in flight).
    chain_matches: bool | None


@dataclass
class Ledger:
    dataset_id: int
    epsilon_cap: Decimal
    epsilon_per_job: Decimal
    delta_per_job: float
    delta_cap: Decimal
    epsilon_spent: Decimal
    delta_spent: Decimal
    epsilon_reserved: Decimal
    delta_reserved: Decimal
    epsilon_on_chain: Decimal | None  # cumulative epsilon the datatoken has booked, as last indexed
    delta_on_chain: float | None = None  # cumulative delta it has booked (contracts v2 budget delta too)
    entries: list[LedgerEntry] = field(default_factory=list)

    @property
    def chain_ok(self) -> bool | None:
        """Every entry matches the chain (None while some are not on chain yet)."""
        if any(e.chain_matches is False for e in self.entries):
            return False
        if any(e.chain_matches is None for e in self.entries):
            return None
        return True


def _hour(moment: datetime | None) -> datetime | None:
    return moment.replace(minute=0, second=0, microsecond=0) if moment else None


def _chain_matches(job: ComputeJob) -> bool | None:
    order = job.order
    if order is None or order.status != Order.Status.RECEIPTED or not order.receipt:
        return None
    same_epsilon = order.epsilon_spent is not None and Decimal(order.epsilon_spent) == job.epsilon_spent
    on_chain_hash = str(order.receipt.get("dataset_hash") or "")
    if not on_chain_hash.startswith("0x"):
        on_chain_hash = "0x" + on_chain_hash
    return same_epsilon and on_chain_hash.lower() == job.dataset_hash.lower()


def ledger_for(*, dataset: Dataset) -> Ledger:
    """The dataset's ledger, oldest release first."""
    summary = budget_summary(dataset=dataset)
    listing = ChainListing.objects.filter(dataset=dataset).first()
    on_chain = None
    delta_on_chain = None
    if listing is not None and getattr(listing, "epsilon_ordered_units", None) is not None:
        on_chain = units_to_epsilon(int(listing.epsilon_ordered_units))
        delta_on_chain = units_to_delta(int(listing.delta_ordered_units))
    ledger = Ledger(
        dataset_id=dataset.pk,
        epsilon_cap=summary.epsilon_total,
        epsilon_per_job=summary.epsilon_per_job,
        delta_per_job=summary.delta,
        delta_cap=summary.delta_total,
        epsilon_spent=summary.epsilon_spent,
        delta_spent=summary.delta_spent,
        epsilon_reserved=summary.epsilon_reserved,
        delta_reserved=summary.delta_reserved,
        epsilon_on_chain=on_chain,
        delta_on_chain=delta_on_chain,
    )
    jobs = (
        ComputeJob.objects.filter(dataset=dataset, budget_state=ComputeJob.Budget.CHARGED)
        .select_related("order")
        .order_by("started_at", "id")[:LEDGER_MAX_ENTRIES]
    )
    epsilon_total, delta_total = Decimal("0"), Decimal("0")
    for job in jobs:
        epsilon_total += job.epsilon_spent or job.epsilon
        delta_total += delta_decimal(job.delta)
        receipt = (job.order.receipt or {}) if job.order else {}
        ledger.entries.append(
            LedgerEntry(
                job_id=job.pk,
                algorithm=job.algorithm,
                epsilon=job.epsilon_spent or job.epsilon,
                delta=job.delta,
                accountant=str((job.parameters or {}).get("accountant", "")),
                time=_hour(job.finished_at or job.started_at),
                status=job.status,
                epsilon_total_after=epsilon_total,
                delta_total_after=delta_total,
                receipt_tx=receipt.get("tx_hash"),
                block_number=receipt.get("block_number"),
                chain_matches=_chain_matches(job),
            )
        )
    return ledger
