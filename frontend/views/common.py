"""What every page module shares: the dataset a request may see or change, the moderator check,
safe ``next`` targets, pagination, the file-upload wrapper and the error shown on the error page."""

from __future__ import annotations

from functools import wraps

from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from chain.selectors import dataset_orderable
from common.errors import FileTooLarge, InvalidFile, PermissionDenied
from marketplace.models import Dataset
from marketplace.selectors import catalog

TABLE_PAGE_SIZE = 50
EDITABLE_STATUSES = {Dataset.Status.DRAFT, Dataset.Status.REJECTED}


class PageError:
    """What ``frontend/error.html`` shows: a stable code, the human detail, the status."""

    def __init__(self, code: str, detail: str, status: int) -> None:
        self.code, self.detail, self.status = code, detail, status


def is_xhr(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def next_or(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def dataset_visible(request: HttpRequest, dataset_id: int) -> Dataset:
    return catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)


def dataset_owned(request: HttpRequest, dataset_id: int) -> Dataset:
    dataset = dataset_visible(request, dataset_id)
    if not catalog.can_edit(dataset=dataset, user=request.user):
        raise PermissionDenied("Only the dataset's owner can change it.")
    return dataset


def require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only moderators can see this page.")


def paginate(request: HttpRequest, queryset, size: int):
    # Same paginator as the API: catalogue totals are cached briefly, rows are always live.
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def order_refusal(request: HttpRequest, dataset: Dataset) -> str | None:
    """Why the job form does not apply to this user and dataset, or None."""
    refusal = dataset_orderable(dataset=dataset, user=request.user)
    return refusal.detail if refusal else None


def upload_view(view):
    """For views that take file uploads. The upload handler refuses an oversize body while the
    request is parsed; normally the CSRF middleware parses first and that would surface as a
    500. Here the body is parsed before the CSRF check, so an oversize upload gets the view's
    form back with the message (``request.upload_error`` is set, and the view must only render
    in that case); every other request goes through ``csrf_protect`` as usual."""
    protected = csrf_protect(view)

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method == "POST":
            try:
                request.FILES  # noqa: B018 - parse now, so FileTooLarge surfaces here
            except (FileTooLarge, InvalidFile) as exc:  # too large, or a CSV header refused as it arrived
                request.upload_error = exc
                return view(request, *args, **kwargs)
        return protected(request, *args, **kwargs)

    return wrapper
