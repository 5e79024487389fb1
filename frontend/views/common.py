"""What every page module shares: the request's user (signed in, or a visitor), the dataset a
request may see or change, the moderator check, safe ``next`` targets, pagination, the file-upload
wrapper and the error shown on the error page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar

from django.core.paginator import Page, Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from chain.selectors import dataset_orderable
from common.errors import FileTooLarge, InvalidFile, PermissionDenied
from marketplace.models import Dataset, User
from marketplace.selectors import catalog

P = ParamSpec("P")
M = TypeVar("M", bound=Model)

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


def signed_in_user(request: HttpRequest) -> User:
    """The user of a ``login_required`` page: the decorator sends anyone else to the log-in page
    before the view runs, so a visitor here is a view that lost its decorator."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("Sign in to see this page.")
    return user


def user_or_none(request: HttpRequest) -> User | None:
    """The signed-in user, or None for an anonymous visitor: what the selectors take."""
    user = request.user
    return user if isinstance(user, User) else None


def dataset_visible(request: HttpRequest, dataset_id: int) -> Dataset:
    return catalog.dataset_get_visible(dataset_id=dataset_id, user=user_or_none(request))


def dataset_owned(request: HttpRequest, dataset_id: int) -> Dataset:
    dataset = dataset_visible(request, dataset_id)
    if not catalog.can_edit(dataset=dataset, user=user_or_none(request)):
        raise PermissionDenied("Only the dataset's owner can change it.")
    return dataset


def require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only moderators can see this page.")


def paginate(request: HttpRequest, queryset: QuerySet[M], size: int) -> Page[M]:
    # Same paginator as the API: catalogue totals are cached briefly, rows are always live.
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def order_refusal(request: HttpRequest, dataset: Dataset) -> str | None:
    """Why the job form does not apply to this user and dataset, or None."""
    refusal = dataset_orderable(dataset=dataset, user=request.user)
    return refusal.detail if refusal else None


def upload_view(
    view: Callable[Concatenate[HttpRequest, P], HttpResponse],
) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
    """For views that take file uploads. The upload handler refuses an oversize body while the
    request is parsed; normally the CSRF middleware parses first and that would surface as a
    500. Here the body is parsed before the CSRF check, so an oversize upload gets the view's
    form back with the message (``upload_error(request)`` returns it, and the view must only
    render in that case); every other request goes through ``csrf_protect`` as usual."""
    protected = csrf_protect(view)

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        if request.method == "POST":
            try:
                request.FILES  # noqa: B018 - parse now, so FileTooLarge surfaces here
            except (FileTooLarge, InvalidFile) as exc:  # too large, or a CSV header refused as it arrived
                # HttpRequest declares no such attribute: set by name here, read through upload_error().
                setattr(request, "upload_error", exc)  # noqa: B010
                return view(request, *args, **kwargs)
        return protected(request, *args, **kwargs)

    return wrapper


def upload_error(request: HttpRequest) -> FileTooLarge | InvalidFile | None:
    """The upload ``upload_view`` refused while it parsed the request, or None."""
    error = getattr(request, "upload_error", None)
    return error if isinstance(error, FileTooLarge | InvalidFile) else None
