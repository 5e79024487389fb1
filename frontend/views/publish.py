"""The provider's side of a dataset: upload, schema, listing edit, mock file, delete, the status
moves (submit; a moderator's approve, reject, delist, relist), reports, publishing on chain, the
provider's list, and the owner's private commitment page.

The commitment page shows the file's exact size, SHA-256 and row count, the commitment's salt and
formula (to re-derive the public commitment), a check of a candidate file against the commitment,
and the report of cells that do not fit the schema. Owner and staff only: to anyone else a file
check would be exactly the confirmation oracle the salt prevents."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from chain.models import ChainListing
from chain.services import publishing as publishing_services
from common.crypto import DecryptionError
from common.errors import DomainError, PermissionDenied
from frontend.forms import (
    DatasetUploadForm,
    ListingForm,
    MockUploadForm,
    ReportForm,
    SchemaColumnForm,
    SchemaConfirmForm,
    SchemaFormSet,
    TransitionForm,
)
from frontend.views.common import (
    EDITABLE_STATUSES,
    TABLE_PAGE_SIZE,
    dataset_owned,
    dataset_visible,
    is_xhr,
    next_or,
    paginate,
    signed_in_user,
    upload_error,
    upload_view,
)
from marketplace.selectors import catalog
from marketplace.selectors.schema_report import dataset_schema_report
from marketplace.services import datasets as dataset_services
from marketplace.services import moderation as moderation_services

TRANSITION_DONE = {
    "submit": "Submitted for review. A moderator will look at it shortly.",
    "approve": "Approved: the dataset is now listed.",
    "reject": "Rejected. The provider can see your reason.",
    "delist": "Delisted: the dataset is hidden from the catalogue.",
    "relist": "Relisted: the dataset is back in the catalogue.",
}


class CommitmentCheckForm(forms.Form):
    file = forms.FileField(
        label="Candidate file",
        label_suffix="",
        help_text="Read here only to hash it with your dataset's salt; it is not stored.",
    )


@login_required
@upload_view
def dataset_new(request: HttpRequest) -> HttpResponse:
    def form_page(form, error: str | None = None, status: int = 200) -> HttpResponse:
        return render(
            request,
            "frontend/dataset_new.html",
            {"form": form, "error": error, "max_bytes": settings.DATASET_MAX_UPLOAD_BYTES},
            status=status,
        )

    refused = upload_error(request)
    if refused is not None:
        return form_page(DatasetUploadForm(), refused.detail, refused.status)
    if request.method != "POST":
        return form_page(DatasetUploadForm())
    form = DatasetUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return form_page(form, status=400)
    upload = form.cleaned_data["file"]
    try:
        dataset = dataset_services.dataset_create(
            owner=signed_in_user(request), file=upload, filename=upload.name, fields=form.listing_fields()
        )
    except DomainError as exc:
        return form_page(form, exc.detail, exc.status)
    messages.success(request, f"Uploaded “{dataset.title}”. Now check the proposed schema and confirm it.")
    target = reverse("frontend:dataset-schema", args=[dataset.pk])
    if is_xhr(request):
        return JsonResponse({"redirect": target})
    return redirect(target)


@login_required
def dataset_schema(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_owned(request, dataset_id)
    source = dataset.declared_schema or dataset.proposed_schema or {}
    columns = source.get("columns", [])
    notes = {c.get("name"): c.get("note", "") for c in (dataset.proposed_schema or {}).get("columns", [])}
    initial = [SchemaColumnForm.initial_for(c) for c in columns]
    formset = SchemaFormSet(request.POST or None, initial=initial, prefix="col")
    confirm_form = SchemaConfirmForm(request.POST or None, dataset=dataset)
    error, status = None, 200
    if request.method == "POST":
        if not formset.is_valid() or len(formset.forms) != len(columns) or not confirm_form.is_valid():
            error, status = "Please correct the highlighted fields.", 400
        else:
            schema = {"columns": [f.column_spec(c["name"]) for f, c in zip(formset.forms, columns, strict=True)]}
            try:
                dataset_services.dataset_schema_declare(
                    dataset=dataset,
                    actor=signed_in_user(request),
                    schema=schema,
                    public_row_count=confirm_form.cleaned_data["public_row_count"],
                    holdout_fraction=confirm_form.cleaned_data["holdout_fraction"],
                )
            except DomainError as exc:
                error, status = exc.detail, exc.status
            else:
                messages.success(request, "Schema confirmed. It is now part of the public listing.")
                return redirect("frontend:dataset", dataset_id=dataset.pk)
    rows = [(col, form, notes.get(col.get("name"), "")) for col, form in zip(columns, formset.forms, strict=False)]
    return render(
        request,
        "frontend/dataset_schema.html",
        {
            "dataset": dataset,
            "formset": formset,
            "confirm_form": confirm_form,
            "rows": rows,
            "error": error,
            "editable": dataset.status in EDITABLE_STATUSES,
            "confirmed": bool(dataset.declared_schema),
            "report": dataset_schema_report(dataset=dataset),
        },
        status=status,
    )


@login_required
def dataset_edit(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_owned(request, dataset_id)
    form = ListingForm(request.POST or None, initial=ListingForm.initial_for(dataset))
    error, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                dataset = dataset_services.dataset_update(
                    dataset=dataset, actor=signed_in_user(request), fields=form.listing_fields()
                )
            except DomainError as exc:
                error, status = exc.detail, exc.status
            else:
                if dataset.pending_edit:
                    messages.success(
                        request,
                        "Saved. Your changes to the title, description, tags or licence wait for a moderator; "
                        "buyers see the approved text until then.",
                    )
                else:
                    messages.success(request, "Listing saved.")
                return redirect("frontend:dataset", dataset_id=dataset.pk)
        else:
            status = 400
    return render(
        request, "frontend/dataset_edit.html", {"dataset": dataset, "form": form, "error": error}, status=status
    )


@login_required
@upload_view
def dataset_mock(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_owned(request, dataset_id)
    error, status = None, 200
    form = MockUploadForm()
    refused = upload_error(request)
    if refused is not None:
        error, status = refused.detail, refused.status
    elif request.method == "POST":
        form = MockUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                dataset_services.dataset_mock_upload(
                    dataset=dataset, actor=signed_in_user(request), file=upload, filename=upload.name
                )
            except DomainError as exc:
                error, status = exc.detail, exc.status
            else:
                messages.success(request, "Mock file uploaded. Buyers now download it instead of synthetic rows.")
                return redirect("frontend:dataset", dataset_id=dataset.pk)
        else:
            status = 400
    return render(
        request,
        "frontend/dataset_mock.html",
        {
            "dataset": dataset,
            "form": form,
            "error": error,
            "max_bytes": settings.DATASET_MAX_MOCK_UPLOAD_BYTES,
        },
        status=status,
    )


@require_POST
@login_required
def dataset_mock_remove(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_owned(request, dataset_id)
    try:
        dataset_services.dataset_mock_remove(dataset=dataset, actor=signed_in_user(request))
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Mock file removed. Buyers now get synthetic rows from the declared schema.")
    return redirect("frontend:dataset", dataset_id=dataset.pk)


@login_required
def dataset_delete(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_owned(request, dataset_id)
    if request.method == "POST":
        title = dataset.title
        try:
            dataset_services.dataset_delete(dataset=dataset, actor=signed_in_user(request))
        except DomainError as exc:
            return render(
                request, "frontend/dataset_delete.html", {"dataset": dataset, "error": exc.detail}, status=exc.status
            )
        messages.success(request, f"Deleted “{title}” and its file.")
        return redirect("frontend:my-datasets")
    return render(request, "frontend/dataset_delete.html", {"dataset": dataset})


@require_POST
@login_required
def dataset_transition(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_visible(request, dataset_id)
    back = next_or(request, reverse("frontend:dataset", args=[dataset.pk]))
    form = TransitionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown action.")
        return HttpResponseRedirect(back)
    action = form.cleaned_data["action"]
    try:
        moderation_services.dataset_transition(
            dataset=dataset, actor=signed_in_user(request), action=action, reason=form.cleaned_data["reason"]
        )
    except DomainError as exc:
        messages.error(request, f"“{dataset.title}”: {exc.detail}")
    else:
        messages.success(request, f"“{dataset.title}”: {TRANSITION_DONE[action]}")
    return HttpResponseRedirect(back)


@require_POST
@login_required
def dataset_report(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_visible(request, dataset_id)
    form = ReportForm(request.POST)
    reason = form.data.get("reason", "")
    try:
        moderation_services.report_create(dataset=dataset, reporter=signed_in_user(request), reason=reason)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Thank you. The moderators have your report.")
    return redirect("frontend:dataset", dataset_id=dataset.pk)


@login_required
def my_datasets(request: HttpRequest) -> HttpResponse:
    # The chain state rides along in the same query (a LEFT JOIN on the listing).
    datasets = catalog.datasets_of_owner(owner=signed_in_user(request)).select_related("chain_listing")
    return render(request, "frontend/my_datasets.html", {"page": paginate(request, datasets, TABLE_PAGE_SIZE)})


@require_POST
@login_required
def dataset_publish(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_owned(request, dataset_id)
    try:
        listing = publishing_services.dataset_publish(dataset=dataset, user=signed_in_user(request))
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        listing.refresh_from_db()  # the transaction may already be mined (a fast chain, an eager worker)
        if listing.state == ChainListing.State.PUBLISHED:
            messages.success(request, "Published on chain: the data NFT and the datatoken are minted.")
        elif listing.state == ChainListing.State.FAILED:
            messages.error(request, f"Publishing failed: {listing.error}")
        else:
            messages.success(request, "Publishing on chain. This page shows the result when the transaction is mined.")
    return redirect(reverse("frontend:dataset", args=[dataset.pk]) + "#chain")


@login_required
@upload_view
def dataset_commitment(request: HttpRequest, dataset_id: int) -> HttpResponse:
    user = signed_in_user(request)
    dataset = dataset_visible(request, dataset_id)
    if not (user.is_staff or catalog.can_edit(dataset=dataset, user=user)):
        raise PermissionDenied("Only the dataset's owner can see its file's private details.")
    try:
        salt = dataset_services.dataset_commitment_salt(dataset=dataset).hex()
    except DecryptionError:
        salt = ""
    form, result, error, status = CommitmentCheckForm(), None, None, 200
    refused = upload_error(request)
    if refused is not None:
        error, status = refused.detail, refused.status
    elif request.method == "POST":
        form = CommitmentCheckForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = dataset_services.dataset_commitment_check(dataset=dataset, actor=user, file=upload)
            except (DomainError, DecryptionError) as exc:
                error, status = getattr(exc, "detail", str(exc)), getattr(exc, "status", 409)
            finally:
                upload.close()
        else:
            status = 400
    return render(
        request,
        "frontend/dataset_commitment.html",
        {
            "dataset": dataset,
            "salt": salt,
            "formula": dataset_services.COMMITMENT_FORMULA,
            "form": form,
            "result": result,
            "error": error,
            "report": dataset_schema_report(dataset=dataset),
        },
        status=status,
    )
