"""Compute jobs: created with their order, paid when the order is verified on chain, queued once
their epsilon is reserved, run by a worker in a fresh sandbox, published, settled on chain.

Every status change goes through ``job_transition`` (the allowed moves are
``ComputeJob.TRANSITIONS``). Budget rule: a job that ends before the runner started (nothing read
the data) has its reservation released and its order refunded; once the runner started, the
reservation is charged (in full unless the runner finished and reported what its accountant
spent) and a receipt is recorded on chain, because the provider's budget was used either way."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from chain.models import Order
from chain.selectors import dataset_orderable
from common.errors import Conflict, IllegalTransition, InvalidInput, NotFound, PermissionDenied
from common.tasks import enqueue
from compute_to_data.failures import FAILURES, failure_text
from compute_to_data.models import ComputeJob, JobLogEntry
from compute_to_data.runner import params as runner_params
from compute_to_data.services import budget as budget_services
from compute_to_data.services.receipts import failure_hash, params_hash, receipt_of
from compute_to_data.signals import job_status_changed
from marketplace.models import Dataset, User

logger = logging.getLogger(__name__)

_STAMPS: dict[str, str] = {
    ComputeJob.Status.PAID: "paid_at",
    ComputeJob.Status.QUEUED: "queued_at",
    ComputeJob.Status.RUNNING: "started_at",
    ComputeJob.Status.FINISHED: "finished_at",
    ComputeJob.Status.FAILED: "finished_at",
    ComputeJob.Status.CANCELLED: "finished_at",
    ComputeJob.Status.REJECTED: "finished_at",
}


# Stamps from the moment the runner reads the data on: stored (and so released) to the minute, so
# how long a job ran says next to nothing about the rows it ran on.
COARSE_STAMPS = frozenset({"started_at", "finished_at"})
TIME_BUCKET = timedelta(minutes=1)


def time_bucket(moment: datetime) -> datetime:
    """``moment`` rounded down to the whole minute (the coarse time buckets released)."""
    return moment.replace(second=0, microsecond=0)


def job_log(job: ComputeJob | int, message: str, *, source: str = JobLogEntry.Source.PLATFORM) -> None:
    JobLogEntry.objects.create(job_id=getattr(job, "pk", job), source=source, message=message[:2000])


def job_transition(job: ComputeJob, to: str, *, reason: str | None = None, **fields: Any) -> ComputeJob:
    """Move ``job`` to ``to`` or raise ``IllegalTransition``. Saves the job with ``fields``.

    Call inside ``transaction.atomic`` with the job row locked (SELECT ... FOR UPDATE)."""
    if to not in ComputeJob.TRANSITIONS.get(job.status, frozenset()):
        raise IllegalTransition(f"A {job.get_status_display().lower()} job cannot become {to}.")
    previous = job.status
    job.status = to
    update = {"status", "updated_at", *fields}
    for name, value in fields.items():
        setattr(job, name, value)
    stamp = _STAMPS.get(to)
    if stamp and getattr(job, stamp) is None:
        now = timezone.now()
        if stamp in COARSE_STAMPS:
            now = time_bucket(now)
        setattr(job, stamp, now)
        update.add(stamp)
    if reason is not None:
        job.reason = reason[:4000]
        update.add("reason")
    if to in ComputeJob.TERMINAL:
        update |= {"budget_state", "epsilon_spent", "result_hash"}
    job.save(update_fields=sorted(update))
    job_id = job.pk
    transaction.on_commit(
        lambda: job_status_changed.send(sender=ComputeJob, job_id=job_id, status=to, previous=previous)
    )
    return job


def _locked(job_id: int) -> ComputeJob:
    return ComputeJob.objects.select_for_update(of=("self",)).select_related("dataset").get(pk=job_id)


# --- creating a job ------------------------------------------------------------------------------


def parameters_for(*, dataset: Dataset, algorithm: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Normalised parameters for ``dataset`` or ``InvalidInput`` naming the field at fault."""
    if not dataset.declared_schema:
        raise Conflict("This dataset has no declared schema yet, so it cannot be computed on.", code="no_schema")
    if not dataset.public_row_count:
        # The runner derives sampling and steps from this public figure, never from the private count.
        raise Conflict(
            "The provider has not declared this dataset's public row count yet, so it cannot be computed on.",
            code="no_public_row_count",
        )
    try:
        return runner_params.parameters_normalize(
            algorithm,
            dict(parameters or {}),
            schema=dataset.declared_schema,
            epsilon_max=float(dataset.epsilon_per_job),
            delta_max=float(dataset.delta),
        )
    except runner_params.ParameterError as exc:
        field = getattr(exc, "field", None)
        raise InvalidInput(
            str(getattr(exc, "message", exc)),
            code="invalid_parameters",
            extra={"field": field} if field else None,
        ) from exc


def job_quote(*, user: User, dataset: Dataset, algorithm: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """What "pay and run" would do, before anything is sent: the normalised parameters and their
    hash (what the order commits to), the order's quote from the buyer's managed wallet (which pays
    for jobs created without an order), the budget left before and after, and what stands in the
    way (``problems``: human sentences; empty when the job can go ahead)."""
    from chain.services import orders as order_services
    from chain.services import wallets as wallet_services

    normalised = parameters_for(dataset=dataset, algorithm=algorithm, parameters=parameters)
    digest = params_hash(algorithm, normalised)
    epsilon = budget_services.epsilon_round_up(normalised["epsilon"])
    wallet = wallet_services.wallet_managed_get_or_create(user=user)
    order = order_services.order_quote(
        user=user,
        dataset=dataset,
        epsilon=epsilon,
        delta=float(normalised["delta"]),
        algorithm_hash_hex=digest,
        wallet_address=wallet.address,
    )
    problems = [p["detail"] for p in order.problems]
    try:
        budget_services.budget_check_left(dataset=dataset, epsilon=epsilon, delta=float(normalised["delta"]))
    except Conflict as exc:
        problems.insert(0, exc.detail)
    summary = budget_services.budget_summary(dataset=dataset)
    from compute_to_data.runner.preview import accuracy_preview

    # From public figures only (parameters, declared schema, public row count): free to show.
    schema, public_rows = dataset.declared_schema, dataset.public_row_count
    assert schema is not None and public_rows is not None  # parameters_for refuses a dataset without them
    preview = accuracy_preview(
        algorithm=algorithm,
        parameters=normalised,
        schema=schema,
        public_rows=int(public_rows),
        holdout_fraction=dataset.holdout_fraction,
    )
    return {
        "preview": preview,
        "parameters": normalised,
        "params_hash": digest,
        "epsilon": epsilon,
        "delta": float(normalised["delta"]),
        "epsilon_left": summary.epsilon_left,
        "epsilon_left_after": max(summary.epsilon_left - epsilon, Decimal(0)),
        "delta_left": summary.delta_left,
        "delta_left_after": max(summary.delta_left - budget_services.delta_decimal(normalised["delta"]), Decimal(0)),
        "order": order,
        "problems": problems,
        "release": order_services.RELEASE_TEXT,
    }


def _check_orderable(*, user: User, dataset: Dataset) -> None:
    refusal = dataset_orderable(dataset=dataset, user=user)
    if refusal is not None:
        raise refusal.as_error()


@dataclass(frozen=True)
class JobTerms:
    """What an order paying for a job must commit to."""

    parameters: dict[str, Any]  # normalised
    params_hash: str
    epsilon: Decimal
    delta: float


def job_terms(*, dataset: Dataset, algorithm: str, parameters: dict[str, Any] | None) -> JobTerms:
    """The normalised parameters, their hash, epsilon and delta of a job, as ``job_create`` will
    book them; refused (before anything is paid) when epsilon has more than 4 decimal places or is
    above the dataset's budget left."""
    normalised = parameters_for(dataset=dataset, algorithm=algorithm, parameters=parameters)
    epsilon = Decimal(str(normalised["epsilon"]))
    if epsilon != epsilon.quantize(budget_services.EPSILON_QUANTUM):
        raise InvalidInput(
            "Epsilon can have at most 4 decimal places.", code="invalid_parameters", extra={"field": "epsilon"}
        )
    budget_services.budget_check_left(dataset=dataset, epsilon=epsilon, delta=float(normalised["delta"]))
    return JobTerms(
        parameters=normalised,
        params_hash=params_hash(algorithm, normalised),
        epsilon=epsilon,
        delta=float(normalised["delta"]),
    )


EVALUATION_CSV_MAX_CHARS = 2_000_000


def evaluation_check(*, algorithm: str, parameters: dict[str, Any], text: str) -> None:
    """Refuse (before paying) an evaluation CSV the runner could not use: not for training, too
    large, or a header without the job's features and target."""
    if runner_params.ALGORITHMS[algorithm].kind == "statistics":
        raise InvalidInput(
            "An evaluation file goes with a training algorithm, not dp-statistics.", code="invalid_evaluation_csv"
        )
    if len(text) > EVALUATION_CSV_MAX_CHARS:
        raise InvalidInput(
            f"The evaluation CSV is larger than {EVALUATION_CSV_MAX_CHARS:,} characters.", code="invalid_evaluation_csv"
        )
    if "\0" in text:
        raise InvalidInput("The evaluation CSV must be text.", code="invalid_evaluation_csv")
    header = [c.strip().strip('"') for c in text.splitlines()[0].split(",")] if text.strip() else []
    missing = [c for c in [*parameters.get("features", []), parameters.get("target")] if c and c not in header]
    if missing:
        raise InvalidInput(
            "The evaluation CSV's header lacks: " + ", ".join(str(m)[:60] for m in missing[:10]) + ".",
            code="invalid_evaluation_csv",
        )


def job_create(
    *,
    user: User,
    dataset: Dataset,
    algorithm: str,
    parameters: dict[str, Any] | None,
    order: Order | None = None,
    tx_hash: str | None = None,
    evaluation_csv: str | None = None,
) -> ComputeJob:
    """Create a job and its payment. With ``order`` (an order the buyer already placed) the job
    adopts it; with ``tx_hash`` the buyer's own wallet sent buy+order and the order is registered
    for verification; with neither, the buyer's managed wallet pays (one transaction). The job
    runs once its order is confirmed on chain and its epsilon is reserved."""
    from chain.services import orders as order_services

    _check_orderable(user=user, dataset=dataset)
    terms = job_terms(dataset=dataset, algorithm=algorithm, parameters=parameters)
    if evaluation_csv:
        evaluation_check(algorithm=algorithm, parameters=terms.parameters, text=evaluation_csv)
    normalised, epsilon, delta, digest = terms.parameters, terms.epsilon, terms.delta, terms.params_hash
    with transaction.atomic():
        if order is not None:
            order = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
            _check_adoptable(order=order, user=user, dataset=dataset, epsilon=epsilon, delta=delta, digest=digest)
        else:
            order = order_services.order_create(
                user=user, dataset=dataset, epsilon=epsilon, delta=delta, algorithm_hash_hex=digest, tx_hash=tx_hash
            )
            if ComputeJob.objects.filter(order=order).exists():
                raise Conflict("This order already pays for another job.", code="order_used")
        job = ComputeJob.objects.create(
            buyer=user,
            dataset=dataset,
            order=order,
            algorithm=algorithm,
            parameters=normalised,
            params_hash=digest,
            epsilon=epsilon,
            delta=delta,
            dataset_hash=dataset.commitment,
            evaluation_csv=evaluation_csv or "",
        )
        job_log(job, f"Job created: {algorithm} with epsilon {epsilon}, delta {delta:g}. Waiting for the payment.")
        job_id, order_id = job.pk, order.pk
        # The order may be decided already (adopted, or claimed from the indexer).
        transaction.on_commit(lambda: job_follow_order(order_id=order_id))
    return ComputeJob.objects.get(pk=job_id)


def _check_adoptable(
    *, order: Order, user: User, dataset: Dataset, epsilon: Decimal, delta: float, digest: str
) -> None:
    if order.buyer_id != user.pk:
        raise NotFound("No such order.")
    if order.dataset_id != dataset.pk:
        raise Conflict("That order pays for another dataset.", code="order_mismatch")
    if ComputeJob.objects.filter(order=order).exists():
        raise Conflict("This order already pays for another job.", code="order_used")
    if order.status not in (Order.Status.PENDING, Order.Status.CONFIRMING, Order.Status.CONFIRMED):
        raise Conflict(f"That order is {order.status}; it cannot pay for a job.", code="order_not_usable")
    problems = []
    if order.epsilon != epsilon:
        problems.append(f"the order reserved epsilon {order.epsilon}, the parameters ask for {epsilon}")
    if abs(order.delta - delta) > 1e-18:
        problems.append(f"the order's delta is {order.delta:g}, the parameters' {delta:g}")
    if order.algorithm_hash.lower() != digest.lower():
        problems.append("the order committed to another algorithm or other parameters (hash differs)")
    if problems:
        raise Conflict("The order does not match this job: " + "; ".join(problems) + ".", code="order_mismatch")


def job_follow_order(*, order_id: int) -> None:
    """Move the job paid by ``order_id`` along with its order: paid (then queued) once the order is
    confirmed on chain, rejected if the order was. Safe to call any number of times."""
    with transaction.atomic():
        job = ComputeJob.objects.select_for_update(of=("self",)).filter(order_id=order_id).first()
        if job is None:
            return
        order = Order.objects.get(pk=order_id)
        if job.status == ComputeJob.Status.CREATED:
            if order.status in (Order.Status.CONFIRMED, Order.Status.RECEIPTED, Order.Status.REFUNDED):
                job_transition(job, ComputeJob.Status.PAID)
                job_log(job, f"Payment confirmed on chain (order {order.chain_order_id}).")
            elif order.status == Order.Status.REJECTED:
                job_transition(job, ComputeJob.Status.REJECTED, reason=f"The payment was not accepted: {order.error}")
                return
        if order.status == Order.Status.RECEIPTED and job.settlement != ComputeJob.Settlement.RECEIPT:
            job.settlement = ComputeJob.Settlement.RECEIPT
            job.save(update_fields=["settlement", "updated_at"])
            job_log(job, f"Receipt recorded on chain in block {(order.receipt or {}).get('block_number')}.")
        elif order.status == Order.Status.REFUNDED and job.settlement != ComputeJob.Settlement.REFUND:
            job.settlement = ComputeJob.Settlement.REFUND
            job.save(update_fields=["settlement", "updated_at"])
            job_log(job, "Payment refunded on chain.")
        elif order.status == Order.Status.RECLAIMED and job.settlement != ComputeJob.Settlement.RECLAIM:
            # Past its deadline unsettled, the buyer took the payment back and the chain released
            # the epsilon: the job's budget follows (released like a refund's).
            job.settlement = ComputeJob.Settlement.RECLAIM
            if job.budget_state == ComputeJob.Budget.CHARGED:
                budget_services.budget_uncharge(job=job)
            else:
                budget_services.budget_release(job=job)
            job.save(update_fields=["settlement", "budget_state", "epsilon_spent", "updated_at"])
            job_log(job, "The buyer reclaimed the payment on chain after its deadline; the epsilon is released.")
            if not job.is_terminal and job.status != ComputeJob.Status.CREATED:
                job_fail(job, "order_expired")
                return
        elif (
            order.status == Order.Status.CONFIRMED and job.is_terminal and job.settlement != ComputeJob.Settlement.NONE
        ):
            # The chain dropped the settlement (or mined a vanished order again): settle again.
            job.settlement = ComputeJob.Settlement.NONE
            job.save(update_fields=["settlement", "updated_at"])
            job_log(job, "The chain dropped this job's settlement (a reorganisation); it is sent again.")
            job_settle_later(job)
        elif order.status == Order.Status.VANISHED and job.settlement != ComputeJob.Settlement.VANISHED:
            job.settlement = ComputeJob.Settlement.VANISHED
            job.save(update_fields=["settlement", "updated_at"])
            job_log(
                job,
                "The chain no longer holds this job's payment (it was rolled back): nothing was charged, "
                "and nothing will be settled for it.",
            )
            if job.status in (ComputeJob.Status.PAID, ComputeJob.Status.QUEUED):
                job_fail(job, "order_vanished")
                return
            if job.status == ComputeJob.Status.CREATED:
                job_transition(job, ComputeJob.Status.REJECTED, reason=failure_text("order_vanished"))
                return
        if job.status != ComputeJob.Status.PAID:
            return
    job_queue(job_id=job.pk)


def job_queue(*, job_id: int) -> ComputeJob:
    """Reserve a paid job's epsilon and queue it, or reject it (and refund it) when the budget has
    less left than it asks for."""
    with transaction.atomic():
        job = _locked(job_id)
        if job.status != ComputeJob.Status.PAID:
            return job
        try:
            budget_services.budget_reserve(job=job)
        except Conflict as exc:
            job_transition(job, ComputeJob.Status.REJECTED, reason=exc.detail)
            job_settle_later(job)
            return job
        job_transition(job, ComputeJob.Status.QUEUED, budget_state=job.budget_state)
        job_log(job, f"Epsilon {job.epsilon} reserved from the dataset's budget. Queued for a worker.")
        enqueue("compute_to_data.tasks.job_run_task", job_id)
    return job


# --- ending a job -------------------------------------------------------------------------------


def job_end(job: ComputeJob, status: str, reason: str, *, limit: str = "", failure: str = "") -> ComputeJob:
    """End a job without results (failed or cancelled): release its budget if nothing read the
    data yet, or if the failure's ``after_data`` rule (``compute_to_data.failures``) says it does
    not depend on the data; else charge it in full. The chain settlement follows after commit.

    Call inside ``transaction.atomic`` with the job row locked."""
    rule = FAILURES[failure].after_data if failure in FAILURES else "charge"
    if job.data_touched_at is None or rule == "refund":
        budget_services.budget_release(job=job)
    else:
        budget_services.budget_charge(job=job)
    if job.data_touched_at is not None and rule != "refund":
        # Settled with a receipt: it names what the buyer got (nothing but this status and reason).
        job.result_hash = failure_hash(job, status, reason)
    job_transition(
        job, status, reason=reason, limit_hit=limit, failure=failure, progress={**job.progress, "phase": status}
    )
    job_log(job, reason)
    job_settle_later(job)
    return job


def job_fail(job: ComputeJob, code: str, *, limit: str = "", reason: str | None = None) -> ComputeJob:
    """End a job for the failure ``code`` (see ``compute_to_data.failures``): its status and the
    fixed sentence the buyer sees come from that table, never from the data or an exception
    (``reason`` replaces the sentence only for a moderator's own words, never for data).

    Call inside ``transaction.atomic`` with the job row locked."""
    failure = FAILURES.get(code) or FAILURES["platform"]
    text = reason if reason is not None else failure_text(failure.code)
    return job_end(job, failure.status, text, limit=limit, failure=failure.code)


def job_settle_later(job: ComputeJob) -> None:
    enqueue("compute_to_data.tasks.job_settle_task", job.pk)


def job_settle(*, job_id: int) -> str:
    """Settle an ended job's order on chain: a receipt when its budget was charged, else a refund.
    Idempotent: does nothing once the order is settled (or while a settlement is in flight)."""
    from chain.services.orders import settlement as order_settlement

    job = ComputeJob.objects.select_related("order", "dataset").get(pk=job_id)
    order = job.order
    if not job.is_terminal or order is None or order.status != Order.Status.CONFIRMED:
        return "nothing to settle"
    try:
        return _settle_order(job, order)
    except order_settlement.OrderExpired:
        # Too close to (or past) the order's deadline: the chain would refuse the settlement. The
        # buyer reclaims the payment (the order page says how); the job says so.
        job_log(job, order_settlement.EXPIRED_TEXT)
        return "expired"
    except order_settlement.OrderVanished:
        # The settlement read the order back from the chain and did not find it as accepted (a
        # rollback reused its id for another buyer's order): nothing is sent, the job says so.
        job_follow_order(order_id=order.pk)
        return "vanished"


def _settle_order(job: ComputeJob, order: Order) -> str:
    from chain.services.orders import settlement as order_settlement

    if job.budget_state == ComputeJob.Budget.CHARGED:
        # A receipt pays the provider and charges the whole reservation on chain, as here.
        receipt = receipt_of(job)
        order_settlement.order_receipt_record(
            order=order,
            dataset_hash=receipt.dataset_hash,
            algorithm_hash_hex=receipt.algorithm_hash,
            params_hash=receipt.params_hash,
            result_hash=receipt.result_hash,
        )
        return "receipt"
    order_settlement.order_refund(order=order)
    return "refund"


def job_cancel(*, job: ComputeJob, user: User) -> ComputeJob:
    """The buyer cancels a job that has not finished running. A paid or queued job ends at once
    (budget released, payment refunded); a provisioning or running one is stopped by its worker
    within a second: before the runner read the data it is refunded in full; after that it is
    charged like any job that read the data (receipt, the whole reservation spent): nothing is
    released to the buyer, but the runner had read the data.

    Only the buyer: a moderator cancels through ``job_cancel_by_moderator``, with a reason."""
    if job.buyer_id != user.pk:
        raise PermissionDenied("Only the buyer can cancel this job.")
    with transaction.atomic():
        job = _locked(job.pk)
        if job.status not in ComputeJob.CANCELLABLE:
            raise IllegalTransition(f"A {job.get_status_display().lower()} job cannot be cancelled.")
        if job.status in (ComputeJob.Status.PAID, ComputeJob.Status.QUEUED):
            return job_fail(job, "cancelled_before_start")
        if job.cancel_requested_at is None:
            job.cancel_requested_at = timezone.now()
            job.save(update_fields=["cancel_requested_at", "updated_at"])
            job_log(job, "Cancellation requested by the buyer; stopping the sandbox.")
    return job


MODERATOR_REASON_MAX = 500


def job_cancel_by_moderator(*, job: ComputeJob, moderator: User, reason: str) -> ComputeJob:
    """A moderator stops any buyer's job that has not finished running, saying why. The buyer is
    never charged for it: the payment is refunded and the epsilon released, whatever the job had
    read (the decision does not depend on the data, and nothing is released). The reason is the
    moderator's words, shown to the buyer as "Cancelled by a moderator: <reason>" and logged.

    A paid or queued job ends at once; a running one is stopped by its worker within a second and
    ends as this cancellation (the worker reads ``cancelled_by``)."""
    if not moderator.is_staff:
        raise PermissionDenied("Only moderators can cancel another buyer's job.")
    if job.buyer_id == moderator.pk:
        # Else a moderator's own running job would come back free (refunded and released).
        raise PermissionDenied("Cancel your own job as its buyer, not as a moderator.")
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput("Say why the job is cancelled: the buyer reads it.", code="reason_required")
    if len(reason) > MODERATOR_REASON_MAX:
        raise InvalidInput(f"The reason is longer than {MODERATOR_REASON_MAX} characters.", code="reason_too_long")
    with transaction.atomic():
        job = _locked(job.pk)
        if job.status not in ComputeJob.CANCELLABLE:
            raise IllegalTransition(f"A {job.get_status_display().lower()} job cannot be cancelled.")
        if job.cancelled_by_id is not None:
            return job  # one moderator's decision stands; a second one changes nothing
        job.cancelled_by = moderator
        job.moderator_reason = reason
        update = ["cancelled_by", "moderator_reason", "updated_at"]
        if job.cancel_requested_at is None:
            job.cancel_requested_at = timezone.now()
            update.append("cancel_requested_at")
        job.save(update_fields=update)
        logger.info("job %s cancelled by moderator %s: %s", job.pk, moderator.pk, reason)
        job_log(job, f"Cancellation by a moderator ({moderator.username}): {reason}")
        if job.status in (ComputeJob.Status.PAID, ComputeJob.Status.QUEUED):
            return job_fail_cancelled(job)
    return job


def job_fail_cancelled(job: ComputeJob, *, running: bool = False, limit: str = "") -> ComputeJob:
    """End a job whose cancellation was requested: the moderator's when there is one (refunded,
    released, their reason shown), else the buyer's (``cancelled_running`` once the runner had
    started, ``cancelled_before_runner`` before).

    Call inside ``transaction.atomic`` with the job row locked."""
    if job.cancelled_by_id is not None:
        text = f"Cancelled by a moderator: {job.moderator_reason}"
        return job_fail(job, "cancelled_by_moderator", limit=limit, reason=text)
    return job_fail(job, "cancelled_running" if running else "cancelled_before_runner", limit=limit)


# --- reading ------------------------------------------------------------------------------------


def job_get_visible(*, job_id: int, user: User) -> ComputeJob:
    """The job if ``user`` is its buyer, the dataset's provider or staff; else ``NotFound``."""
    job = ComputeJob.objects.select_related("dataset", "order", "buyer").filter(pk=job_id).first()
    if job is None or not user.is_authenticated:
        raise NotFound("No such job.")
    if not (user.is_staff or job.buyer_id == user.pk or job.dataset.owner_id == user.pk):
        raise NotFound("No such job.")
    return job


def job_require_buyer(*, job: ComputeJob, user: User) -> None:
    """Results are the buyer's alone (the provider sees the receipt, never the outputs)."""
    if job.buyer_id != user.pk:
        raise PermissionDenied("Only the buyer can fetch this job's results.")
