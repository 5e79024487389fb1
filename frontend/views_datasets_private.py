"""The owner's private page for a dataset's file: its exact size, SHA-256 and row count, the
commitment's salt and formula (to re-derive the public commitment), a check of a candidate file
against the commitment, and the report of cells that do not fit the schema. Owner and staff only:
to anyone else a file check would be exactly the confirmation oracle the salt prevents."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from frontend.views import upload_view
from marketplace.crypto import DecryptionError
from marketplace.errors import DomainError, PermissionDenied
from marketplace.selectors import catalog
from marketplace.selectors.schema_report import dataset_schema_report
from marketplace.services import datasets as dataset_services


class CommitmentCheckForm(forms.Form):
    file = forms.FileField(
        label="Candidate file",
        label_suffix="",
        help_text="Read here only to hash it with your dataset's salt; it is not stored.",
    )


@login_required
@upload_view
def dataset_commitment(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
    if not (request.user.is_staff or catalog.can_edit(dataset=dataset, user=request.user)):
        raise PermissionDenied("Only the dataset's owner can see its file's private details.")
    try:
        salt = dataset_services.dataset_commitment_salt(dataset=dataset).hex()
    except DecryptionError:
        salt = ""
    form, result, error, status = CommitmentCheckForm(), None, None, 200
    if getattr(request, "upload_error", None):
        error, status = request.upload_error.detail, request.upload_error.status
    elif request.method == "POST":
        form = CommitmentCheckForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = dataset_services.dataset_commitment_check(dataset=dataset, actor=request.user, file=upload)
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
