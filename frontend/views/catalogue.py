"""The catalogue and the dataset page (its listing, preview, moderation panel, "On chain" panel,
privacy budget, jobs and receipts, and the job form's state after a POST)."""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chain.models import ChainListing
from chain.selectors import dataset_orderable
from chain.services import orders as order_services
from common.errors import DomainError
from compute_to_data.runner import params as runner_params
from compute_to_data.selectors import jobs_on_dataset_visible, receipts_on_dataset
from compute_to_data.services import budget as budget_services
from frontend.forms import CatalogueFilterForm, JobForm, ReportForm
from frontend.presenters import algorithm_described, budget_view, with_titles
from frontend.views.common import EDITABLE_STATUSES, dataset_visible, paginate, user_or_none
from marketplace.api.pagination import CataloguePaginator
from marketplace.models import Dataset, Report
from marketplace.selectors import catalog
from marketplace.selectors import moderation as moderation_selectors
from marketplace.services.mock import dataset_mock_preview

CATALOGUE_PAGE_SIZE = 20
PREVIEW_ROWS = 10
DATASET_JOBS_SHOWN = 50
RECEIPTS_SHOWN = 20


def catalogue(request: HttpRequest) -> HttpResponse:
    form = CatalogueFilterForm(request.GET or None)
    search = None
    error, status = None, 200
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        try:
            search = catalog.catalogue_search(**(form.search_kwargs() if form.is_bound else {}))
        except DomainError as exc:
            error, status = exc.detail, exc.status
    if search is None:
        page = paginate(request, Dataset.objects.none(), CATALOGUE_PAGE_SIZE)
    else:
        # Model rows for the template; a total cached briefly, rows always live.
        page = CataloguePaginator(search, CATALOGUE_PAGE_SIZE).get_page(request.GET.get("page"))
    active = form.is_bound and any(v for k, v in request.GET.items() if k not in ("page", "sort"))
    return render(
        request,
        "frontend/catalogue.html",
        {"form": form, "page": page, "error": error, "filters_active": active},
        status=status,
    )


def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    return dataset_page(request, dataset_visible(request, dataset_id))


class JobFormState(TypedDict, total=False):
    """The job form's state after a POST: the bound form, its algorithm, the quote, the error."""

    job_form: JobForm | None
    algorithm: dict[str, Any] | None
    quote: dict[str, Any] | None
    job_error: str | None


def dataset_page(
    request: HttpRequest, dataset: Dataset, *, status: int = 200, **order: Unpack[JobFormState]
) -> HttpResponse:
    """The dataset page; ``order`` carries the job form's state (bound form, algorithm, quote, error)
    after a POST."""
    user = user_or_none(request)
    is_owner = catalog.can_edit(dataset=dataset, user=user)
    is_staff = user is not None and user.is_staff
    staff_actions = (
        [
            action
            for action, (sources, _to) in Dataset.TRANSITIONS.items()
            if action != "submit" and dataset.status in sources
        ]
        if is_staff
        else []
    )
    context = {
        "dataset": dataset,
        "is_owner": is_owner,
        "is_staff": is_staff,
        "editable": dataset.status in EDITABLE_STATUSES,
        "columns": (dataset.declared_schema or {}).get("columns", []),
        "preview": dataset_mock_preview(dataset=dataset, rows=PREVIEW_ROWS),
        "staff_actions": staff_actions,
        "log": moderation_selectors.moderation_log(actor=user, dataset=dataset)[:100]
        if user is not None and (is_owner or is_staff)
        else [],
        "reports": moderation_selectors.reports_visible(actor=user, dataset=dataset, status=Report.Status.OPEN)
        if user is not None and is_staff
        else [],
        "can_report": user is not None and not is_owner and dataset.status == Dataset.Status.LISTED,
        "report_form": ReportForm(),
        "auto_refresh": is_owner and dataset.validation == Dataset.Validation.PENDING,
        **_chain_context(request, dataset, is_owner=is_owner, **order),
    }
    return render(request, "frontend/dataset_detail.html", context, status=status)


def _chain_context(
    request: HttpRequest,
    dataset: Dataset,
    *,
    is_owner: bool,
    job_form: JobForm | None = None,
    algorithm: dict[str, Any] | None = None,
    quote: dict[str, Any] | None = None,
    job_error: str | None = None,
) -> dict[str, Any]:
    """The dataset page's "On chain" panel, its privacy budget, the jobs run on it and the job
    form. Database only: no call to the node."""
    user = user_or_none(request)
    listing = ChainListing.objects.select_related("publish_tx").filter(dataset=dataset).first()
    configured = bool(settings.CHAIN_RPC_URL)
    orderable = dataset_orderable(dataset=dataset, listing=listing) is None
    can_buy = configured and orderable and user is not None and not is_owner
    budget = budget_services.budget_summary(dataset=dataset)
    if algorithm is None:
        algorithm = algorithm_described(request.GET.get("algorithm"))
    if can_buy and job_form is None:
        job_form = JobForm(algorithm=algorithm, dataset=dataset, epsilon_left=budget.epsilon_left)
    # The selector takes a signed-in user; it shows no job to a visitor either.
    jobs = list(jobs_on_dataset_visible(dataset=dataset, user=user)[:DATASET_JOBS_SHOWN])
    return {
        "listing": listing,
        "chain_configured": configured,
        "can_publish": is_owner and configured and (listing is None or listing.state == ChainListing.State.FAILED),
        "can_buy": can_buy,
        "login_to_buy": configured and orderable and user is None,
        "algorithms": runner_params.algorithms_describe(),
        "algorithm": algorithm,
        "job_form": job_form if can_buy else None,
        "quote": quote if can_buy else None,
        "job_error": job_error,
        "release_text": order_services.RELEASE_TEXT,
        "chain_polling": listing is not None and listing.state == ChainListing.State.PUBLISHING,
        "budget": budget_view(budget, dataset.pk),
        "dataset_jobs": with_titles(jobs),
        "dataset_jobs_all": is_owner or (user is not None and user.is_staff),
        "receipts": with_titles(list(receipts_on_dataset(dataset=dataset)[:RECEIPTS_SHOWN])),
    }
