"""The moderators' pages: the review queue (datasets, open reports, pending edits), deciding an
edit, resolving a report, and the moderation log."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from common.errors import DomainError, NotFound
from frontend.forms import ModerationFilterForm, ResolveReportForm
from frontend.views.common import TABLE_PAGE_SIZE, dataset_visible, next_or, paginate, require_staff, signed_in_user
from marketplace.models import Dataset, Report
from marketplace.selectors import moderation as moderation_selectors
from marketplace.services import moderation as moderation_services


@login_required
def moderation_queue(request: HttpRequest) -> HttpResponse:
    require_staff(request)
    form = ModerationFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = {"query": data["q"], "reported_only": data["reported"]}
        if data["status"]:
            filters["status"] = data["status"]
    error, status = None, 200
    if form.is_bound and not form.is_valid():
        error, status = "Unknown filter; showing datasets pending review.", 400
    user = signed_in_user(request)
    queue = moderation_selectors.moderation_queue(actor=user, **filters)
    reports = moderation_selectors.reports_visible(actor=user, status=Report.Status.OPEN)[:TABLE_PAGE_SIZE]
    edits = moderation_selectors.moderation_queue(actor=user, status=moderation_selectors.EDIT_PENDING)
    return render(
        request,
        "frontend/moderation_queue.html",
        {
            "form": form,
            "page": paginate(request, queue, TABLE_PAGE_SIZE),
            "reports": reports,
            "edits": edits[:TABLE_PAGE_SIZE],
            "error": error,
            "current_status": filters.get("status", Dataset.Status.PENDING_REVIEW),
        },
        status=status,
    )


@require_POST
@login_required
def dataset_edit_decide(request: HttpRequest, dataset_id: int) -> HttpResponse:
    require_staff(request)
    dataset = dataset_visible(request, dataset_id)
    approve = request.POST.get("decision") == "approve"
    # The version the moderator read (the form carries it): a swapped edit is not decided blind.
    submitted_at = parse_datetime(request.POST.get("submitted_at", "")[:64])
    try:
        if submitted_at is None:
            raise DomainError("Open the edit again and decide from its page.", code="pending_edit_changed")
        moderation_services.dataset_edit_decide(
            dataset=dataset,
            actor=signed_in_user(request),
            approve=approve,
            reason=request.POST.get("reason", ""),
            submitted_at=submitted_at,
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Edit approved: the listing shows it now." if approve else "Edit rejected.")
    return HttpResponseRedirect(next_or(request, reverse("frontend:moderation")))


@require_POST
@login_required
def report_resolve(request: HttpRequest, report_id: int) -> HttpResponse:
    require_staff(request)
    user = signed_in_user(request)
    report = moderation_selectors.reports_visible(actor=user).filter(pk=report_id).first()
    if report is None:
        raise NotFound("No such report.")
    form = ResolveReportForm(request.POST)
    dismiss = form.is_valid() and form.cleaned_data["decision"] == "dismiss"
    try:
        moderation_services.report_resolve(
            report=report, actor=user, resolution=form.data.get("resolution", ""), dismiss=dismiss
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Report dismissed." if dismiss else "Report resolved.")
    return HttpResponseRedirect(next_or(request, reverse("frontend:moderation")))


@login_required
def moderation_log(request: HttpRequest) -> HttpResponse:
    entries = moderation_selectors.moderation_log(actor=signed_in_user(request))
    return render(request, "frontend/moderation_log.html", {"page": paginate(request, entries, TABLE_PAGE_SIZE)})
