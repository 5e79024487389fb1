"""The buyer's side of compute: the job form on the dataset page ("Get a quote", "Preview",
"Pay and run"), my jobs, a job's page, cancelling (by the buyer, or by a moderator with a reason),
the receipt checked against the chain, the results and their downloads."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from common.errors import DomainError, NotFound
from compute_to_data.failures import FAILURES
from compute_to_data.models import ComputeJob
from compute_to_data.runner import params as runner_params
from compute_to_data.services import budget as budget_services
from compute_to_data.services import jobs as job_services
from compute_to_data.services import results as result_services
from frontend.forms import JobForm
from frontend.presenters import (
    FAILURE_CAUSES,
    PHASE_LABELS,
    accounting_view,
    algorithm_described,
    curves,
    metrics_view,
    parameter_text,
    progress_view,
    statistics_view,
    with_titles,
)
from frontend.views.catalogue import dataset_page
from frontend.views.common import TABLE_PAGE_SIZE, dataset_visible, order_refusal, paginate, signed_in_user
from marketplace.models import User

logger = logging.getLogger(__name__)

MAX_STATISTICS_BYTES = 2 * 1024 * 1024
STATISTICS_ARTIFACT = "statistics.json"


@require_POST
@login_required
def dataset_job(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The job form: "Get a quote" re-renders the page with the quote; "Pay and run" creates the
    job, paid from the buyer's managed wallet (one transaction), and goes to the job page."""
    dataset = dataset_visible(request, dataset_id)
    refusal = order_refusal(request, dataset)
    if refusal:
        messages.error(request, refusal)
        return redirect(reverse("frontend:dataset", args=[dataset.pk]) + "#chain")
    name = request.POST.get("algorithm", "")
    if name not in runner_params.ALGORITHMS:
        return dataset_page(request, dataset, job_error="Choose one of the algorithms.", status=400)
    algorithm = algorithm_described(name)
    budget = budget_services.budget_summary(dataset=dataset)
    form = JobForm(request.POST, algorithm=algorithm, dataset=dataset, epsilon_left=budget.epsilon_left)
    if not form.is_valid():
        return dataset_page(request, dataset, job_form=form, algorithm=algorithm, status=400)
    user = signed_in_user(request)
    pay = request.POST.get("intent") == "pay"
    try:
        if pay:
            job = job_services.job_create(user=user, dataset=dataset, algorithm=name, parameters=form.parameters())
        else:
            quote = job_services.job_quote(user=user, dataset=dataset, algorithm=name, parameters=form.parameters())
            if request.POST.get("intent") == "preview":
                from compute_to_data.services.preview import job_preview_run

                quote["preview_run"] = job_preview_run(dataset=dataset, algorithm=name, parameters=form.parameters())
    except DomainError as exc:
        error = None if form.attach_error(exc) else exc.detail
        return dataset_page(request, dataset, job_form=form, algorithm=algorithm, job_error=error, status=exc.status)
    if pay:
        messages.success(request, "Job created. It runs as soon as the payment is confirmed on chain.")
        return redirect(reverse("frontend:job", args=[job.pk]) + "#job-status")
    return dataset_page(request, dataset, job_form=form, algorithm=algorithm, quote=quote)


def _job_visible(request: HttpRequest, job_id: int) -> ComputeJob:
    job = job_services.job_get_visible(job_id=job_id, user=signed_in_user(request))
    with_titles([job])
    return job


@login_required
def my_jobs(request: HttpRequest) -> HttpResponse:
    """The jobs I bought; ``?role=provider``: the jobs run on my datasets."""
    user = signed_in_user(request)
    as_provider = request.GET.get("role") == "provider"
    if as_provider:
        jobs = ComputeJob.objects.filter(dataset__owner=user).select_related("dataset", "buyer")
    else:
        jobs = ComputeJob.objects.filter(buyer=user).select_related("dataset")
    page = paginate(request, jobs, TABLE_PAGE_SIZE)
    page.object_list = with_titles(list(page.object_list))
    return render(request, "frontend/my_jobs.html", {"page": page, "as_provider": as_provider})


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's status and live progress, its budget, payment, log and receipt. The buyer, the
    dataset's provider and staff see it; nobody else learns it exists."""
    return _job_page(request, _job_visible(request, job_id))


def _job_page(
    request: HttpRequest, job: ComputeJob, *, moderator_error: str = "", moderator_reason: str = "", status: int = 200
) -> HttpResponse:
    is_buyer = job.buyer_id == request.user.pk
    cancelling = job.cancel_requested_at is not None and not job.is_terminal
    return render(
        request,
        "frontend/job_detail.html",
        {
            "job": job,
            "is_buyer": is_buyer,
            # A moderator stops another buyer's job with a reason (their own job they cancel as its buyer).
            "can_moderate": request.user.is_staff
            and not is_buyer
            and job.status in ComputeJob.CANCELLABLE
            and job.cancelled_by_id is None,
            "moderator_error": moderator_error,
            "moderator_reason": moderator_reason,
            "moderator_reason_max": job_services.MODERATOR_REASON_MAX,
            "is_provider": job.dataset.owner_id == request.user.pk,
            "algorithm": algorithm_described(job.algorithm) if job.algorithm in runner_params.ALGORITHMS else None,
            "parameters": [(name, parameter_text(value)) for name, value in sorted((job.parameters or {}).items())],
            "progress": progress_view(job),
            "can_cancel": is_buyer and job.status in ComputeJob.CANCELLABLE and not cancelling,
            "cancelling": cancelling,
            "failure_caused_by": FAILURE_CAUSES.get(getattr(FAILURES.get(job.failure), "caused_by", "")),
            "live": not job.is_terminal,
            "log": job.log_entries.all()[:1000],
            "client_labels": {
                "status": dict(ComputeJob.Status.choices),
                "phase": PHASE_LABELS,
                "cancellable": sorted(ComputeJob.CANCELLABLE),
                "terminal": sorted(ComputeJob.TERMINAL),
            },
        },
        status=status,
    )


@login_required
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    """GET: the buyer is asked to confirm, told what they get back now. POST with ``confirm``: the
    job is cancelled (a POST without it only shows the question again)."""
    job = _job_visible(request, job_id)
    job_url = reverse("frontend:job", args=[job.pk]) + "#job-status"
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    if job.buyer_id != request.user.pk:
        messages.error(request, "Only the buyer can cancel this job.")
        return redirect(job_url)
    if job.cancel_requested_at is not None and not job.is_terminal:
        messages.info(request, "Cancellation already requested: the sandbox is being stopped.")
        return redirect(job_url)
    if job.status not in ComputeJob.CANCELLABLE:
        messages.error(request, f"A {job.get_status_display().lower()} job cannot be cancelled.")
        return redirect(job_url)
    if request.method == "GET" or request.POST.get("confirm") != "yes":
        return render(
            request,
            "frontend/job_cancel.html",
            {"job": job, "runner_started": job.data_touched_at is not None or job.status == ComputeJob.Status.RUNNING},
        )
    try:
        job = job_services.job_cancel(job=job, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        if job.status == ComputeJob.Status.CANCELLED:
            messages.success(request, "Job cancelled before it started: its epsilon is released and you are refunded.")
        else:
            messages.success(
                request,
                "Stopping the job. Before the runner reads the data you get everything back; once it has, nothing "
                "is released, so the epsilon is released and the payment goes to the provider for the compute.",
            )
    return redirect(job_url)


@require_POST
@login_required
def job_moderator_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    """A moderator cancels a buyer's job with a reason: refunded, released, logged, and shown to
    the buyer. A missing or too long reason is a form error on the job page."""
    job = _job_visible(request, job_id)
    if not request.user.is_staff:
        raise NotFound("No such job.")
    reason = request.POST.get("reason", "")
    try:
        job = job_services.job_cancel_by_moderator(job=job, moderator=request.user, reason=reason)
    except DomainError as exc:
        return _job_page(request, job, moderator_error=exc.detail, moderator_reason=reason[:2000])
    messages.success(request, "Job cancelled as a moderator: the buyer is refunded and sees your reason.")
    return redirect(reverse("frontend:job", args=[job.pk]) + "#job-status")


@login_required
def job_verify(request: HttpRequest, job_id: int) -> HttpResponse:
    """The receipt checked: every hash recomputed from what the marketplace holds and compared with
    the receipt recorded on chain."""
    job = _job_visible(request, job_id)
    checks: list[Any] = []
    error, status = None, 200
    try:
        checks = result_services.receipt_verify(job=job)
    except DomainError as exc:
        error, status = exc.detail, exc.status
    except Exception:  # the node stopped answering mid-check: say so rather than show a 500
        logger.exception("receipt verification failed for job %s", job.pk)
        error, status = "The receipt could not be checked against the chain right now. Try again shortly.", 503
    oks = [check.ok for check in checks]
    verdict = None if error or not checks or None in oks else all(oks)
    return render(
        request,
        "frontend/job_verify.html",
        {
            "job": job,
            "checks": checks,
            "verdict": verdict,
            "failed": any(ok is False for ok in oks),
            "error": error,
            "is_buyer": job.buyer_id == request.user.pk,
        },
        status=status,
    )


def _statistics_released(job: ComputeJob, user: User) -> dict[str, Any] | None:
    """A dp-statistics job's released statistics (its statistics.json artifact), or None."""
    if not job.artifacts.filter(name=STATISTICS_ARTIFACT).exists():
        return None
    _artifact, fh = result_services.artifact_open(job=job, user=user, name=STATISTICS_ARTIFACT)
    with fh:
        raw = fh.read(MAX_STATISTICS_BYTES + 1)
    if len(raw) > MAX_STATISTICS_BYTES:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    notes = document.get("notes") if isinstance(document, dict) else None
    return {
        "columns": statistics_view(document),
        "notes": [str(n) for n in notes] if isinstance(notes, list) else [],
    }


@login_required
def job_result(request: HttpRequest, job_id: int) -> HttpResponse:
    """The buyer's results: charts of the DP loss and of epsilon over the steps (each with its
    table), the metrics with where each number comes from, the accounting and the downloads."""
    user = signed_in_user(request)
    job = _job_visible(request, job_id)
    job_services.job_require_buyer(job=job, user=user)
    if job.status != ComputeJob.Status.FINISHED:
        messages.info(request, "This job has no results yet: they are released when it finishes.")
        return redirect("frontend:job", job_id=job.pk)
    results = job.results or {}
    return render(
        request,
        "frontend/job_result.html",
        {
            "job": job,
            "results": results,
            "accounting": accounting_view(results, job),
            "metrics": metrics_view(results),
            "artifacts": list(job.artifacts.all()),
            "statistics": _statistics_released(job, user) if job.algorithm == "dp-statistics" else None,
            **curves(results),
        },
    )


@login_required
def job_artifact(request: HttpRequest, job_id: int, name: str) -> FileResponse:
    """One released file, to the buyer only, as a download."""
    job = _job_visible(request, job_id)
    artifact, fh = result_services.artifact_open(job=job, user=signed_in_user(request), name=name)
    response = FileResponse(fh, as_attachment=True, filename=f"job-{job.pk}-{artifact.name}")
    response["X-Content-SHA256"] = artifact.sha256
    return response
