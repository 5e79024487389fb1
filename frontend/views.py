"""Server-rendered pages. Each view parses input, calls one selector or service, and renders;
``DomainError``s from the services come back to the user with their ``detail``."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from functools import wraps
from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse, reverse_lazy
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from chain import client as chain_client
from chain.models import ChainListing, ChainTransaction, Order, Wallet
from chain.selectors import wallet_balances
from chain.services import orders as order_services
from chain.services import publishing as publishing_services
from chain.services import wallets as wallet_services
from compute_to_data.failures import FAILURES
from compute_to_data.models import ComputeJob
from compute_to_data.runner import params as runner_params
from compute_to_data.selectors import jobs_on_dataset_visible, receipts_on_dataset
from compute_to_data.services import budget as budget_services
from compute_to_data.services import jobs as job_services
from compute_to_data.services import results as result_services
from frontend.forms import (
    CatalogueFilterForm,
    DatasetUploadForm,
    JobForm,
    ListingForm,
    LoginForm,
    MockUploadForm,
    ModerationFilterForm,
    ProfileForm,
    ReportForm,
    ResolveReportForm,
    SchemaColumnForm,
    SchemaFormSet,
    SignUpForm,
    TransitionForm,
    plain_number,
)
from marketplace.api.pagination import CachedCountPaginator
from marketplace.errors import DomainError, FileTooLarge, InvalidFile, NotFound, PermissionDenied
from marketplace.models import Dataset, Report
from marketplace.selectors import catalog
from marketplace.selectors import moderation as moderation_selectors
from marketplace.services import datasets as dataset_services
from marketplace.services import moderation as moderation_services
from marketplace.services.accounts import (
    api_token_regenerate,
    email_verification_send,
    password_reset_mail_send,
    user_profile_update,
)
from marketplace.services.accounts import email_verify as email_verify_service
from marketplace.services.mock import dataset_mock_preview

logger = logging.getLogger(__name__)

CATALOGUE_PAGE_SIZE = 20
TABLE_PAGE_SIZE = 50
PREVIEW_ROWS = 10
EDITABLE_STATUSES = {Dataset.Status.DRAFT, Dataset.Status.REJECTED}
TRANSITION_DONE = {
    "submit": "Submitted for review. A moderator will look at it shortly.",
    "approve": "Approved: the dataset is now listed.",
    "reject": "Rejected. The provider can see your reason.",
    "delist": "Delisted: the dataset is hidden from the catalogue.",
    "relist": "Relisted: the dataset is back in the catalogue.",
}


# --- helpers -------------------------------------------------------------------------------


def _is_xhr(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def _next_or(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _dataset_visible(request: HttpRequest, dataset_id: int) -> Dataset:
    return catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)


def _dataset_owned(request: HttpRequest, dataset_id: int) -> Dataset:
    dataset = _dataset_visible(request, dataset_id)
    if not catalog.can_edit(dataset=dataset, user=request.user):
        raise PermissionDenied("Only the dataset's owner can change it.")
    return dataset


def _require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only moderators can see this page.")


def _page(request: HttpRequest, queryset, size: int):
    # Same paginator as the API: catalogue totals are cached briefly, rows are always live.
    return CachedCountPaginator(queryset, size).get_page(request.GET.get("page"))


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


# --- error pages ---------------------------------------------------------------------------


class _PageError:
    def __init__(self, code: str, detail: str, status: int) -> None:
        self.code, self.detail, self.status = code, detail, status


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    error = _PageError("not_found", "There is no page at this address.", 404)
    return render(request, "frontend/error.html", {"error": error}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "server_error", "detail": "Server error."}, status=500)
    error = _PageError("server_error", "Something went wrong on our side. Please try again in a moment.", 500)
    try:
        # No request context: whatever broke may be the database the context processors need.
        body = loader.get_template("frontend/error.html").render({"error": error, "bare": True})
    except Exception:  # the error page must not fail itself
        body = "<h1>Server error</h1><p>Please try again in a moment.</p>"
    return HttpResponse(body, status=500)


# --- accounts ------------------------------------------------------------------------------


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("frontend:catalogue")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        email_verification_send(user=user)
        messages.success(
            request,
            f"Welcome, {user.username}. Your account is ready. We sent a link to {user.email}: follow it to "
            "confirm your address before you submit a dataset for review.",
        )
        return redirect("frontend:catalogue")
    return render(request, "frontend/signup.html", {"form": form}, status=400 if form.errors else 200)


class LoginView(auth_views.LoginView):
    template_name = "frontend/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


class _FormErrorIs400:
    """A form sent back with errors answers 400, as every other page form here does."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class PasswordChangeView(_FormErrorIs400, auth_views.PasswordChangeView):
    """Django's own view; an account made by signing in with a wallet has no password yet and
    sets one without the old one."""

    template_name = "registration/account_password_change.html"
    success_url = reverse_lazy("frontend:profile")

    def get_form_class(self):
        return PasswordChangeForm if self.request.user.has_usable_password() else SetPasswordForm

    def form_valid(self, form):
        messages.success(self.request, "Password changed. Your other signed-in sessions were signed out.")
        return super().form_valid(form)


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's form; the mail goes out through the accounts service (one per account every few
    minutes, logged like every e-mail the site sends)."""

    def send_mail(self, subject_template_name, email_template_name, context, from_email, to_email, **kwargs):
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        password_reset_mail_send(
            user=context["user"], subject=subject, message=loader.render_to_string(email_template_name, context)
        )


class PasswordResetView(_FormErrorIs400, auth_views.PasswordResetView):
    """The e-mail's link is built from SITE_URL, never from the request's Host header (which a
    client chooses), so a forged Host cannot send a reset link to another site."""

    template_name = "registration/account_password_reset.html"
    form_class = PasswordResetForm
    email_template_name = "registration/account_password_reset_email.txt"
    subject_template_name = "registration/account_password_reset_subject.txt"
    success_url = reverse_lazy("frontend:password-reset-done")

    def get_extra_email_context(self):
        return {"site_url": settings.SITE_URL.rstrip("/")}

    def dispatch(self, *args, **kwargs):
        self.extra_email_context = self.get_extra_email_context()
        return super().dispatch(*args, **kwargs)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/account_password_reset_done.html"


class PasswordResetConfirmView(_FormErrorIs400, auth_views.PasswordResetConfirmView):
    template_name = "registration/account_password_reset_confirm.html"
    success_url = reverse_lazy("frontend:password-reset-complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        # Whoever can read the account's mail may log in again at once: lift the account's lockout.
        axes_reset(username=self.user.get_username().lower())
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "registration/account_password_reset_complete.html"


def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the confirmation e-mail; works signed in or not (another browser, a phone)."""
    try:
        user = email_verify_service(token=token)
    except DomainError as exc:
        error = _PageError(exc.code, exc.detail, exc.status)
        return render(request, "frontend/error.html", {"error": error}, status=exc.status)
    messages.success(request, f"Thank you: {user.email} is confirmed.")
    return redirect("frontend:profile" if request.user.is_authenticated else "frontend:login")


@require_POST
@login_required
def email_verify_resend(request: HttpRequest) -> HttpResponse:
    if request.user.email_verified:
        messages.info(request, "Your e-mail address is already confirmed.")
    elif not request.user.email:
        messages.error(request, "Add an e-mail address to your profile first.")
    elif email_verification_send(user=request.user):
        messages.success(request, f"We sent a new confirmation link to {request.user.email}.")
    else:
        messages.error(
            request,
            "We could not send a link just now: one went out in the last few minutes, or the mail server did "
            "not answer. Check your inbox (and spam folder), or try again in a few minutes.",
        )
    return redirect("frontend:profile")


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        user = user_profile_update(
            user=request.user, **{k: form.cleaned_data.get(k, "") for k in ("email", "organisation", "bio")}
        )
        if user.email and not user.email_verified:
            messages.success(request, f"Profile saved. Confirm {user.email} with the link we sent to it.")
        else:
            messages.success(request, "Profile saved.")
        return redirect("frontend:profile")
    token = Token.objects.filter(user=request.user).first()
    return render(
        request,
        "frontend/profile.html",
        {"form": form, "token": token, **_wallets_context(request.user)},
        status=400 if form.errors else 200,
    )


@require_POST
@login_required
def token_regenerate(request: HttpRequest) -> HttpResponse:
    api_token_regenerate(user=request.user)
    messages.success(request, "New API token created. The previous token no longer works.")
    return redirect("frontend:profile")


# --- catalogue and dataset page ----------------------------------------------------------------


def catalogue(request: HttpRequest) -> HttpResponse:
    form = CatalogueFilterForm(request.GET or None)
    results = Dataset.objects.none()
    error, status = None, 200
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        try:
            results = catalog.listing_search(**(form.search_kwargs() if form.is_bound else {}))
        except DomainError as exc:
            error, status = exc.detail, exc.status
    page = _page(request, results, CATALOGUE_PAGE_SIZE)
    active = form.is_bound and any(v for k, v in request.GET.items() if k not in ("page", "sort"))
    return render(
        request,
        "frontend/catalogue.html",
        {"form": form, "page": page, "error": error, "filters_active": active},
        status=status,
    )


def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    return _dataset_page(request, _dataset_visible(request, dataset_id))


def _dataset_page(request: HttpRequest, dataset: Dataset, *, status: int = 200, **order) -> HttpResponse:
    """The dataset page; ``order`` carries the job form's state (bound form, algorithm, quote, error)
    after a POST."""
    user = request.user
    is_owner = catalog.can_edit(dataset=dataset, user=user)
    is_staff = user.is_authenticated and user.is_staff
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
        "log": moderation_selectors.moderation_log(actor=user, dataset=dataset)[:100] if (is_owner or is_staff) else [],
        "reports": moderation_selectors.reports_visible(actor=user, dataset=dataset, status=Report.Status.OPEN)
        if is_staff
        else [],
        "can_report": user.is_authenticated and not is_owner and dataset.status == Dataset.Status.LISTED,
        "report_form": ReportForm(),
        "auto_refresh": is_owner and dataset.validation == Dataset.Validation.PENDING,
        **_chain_context(request, dataset, is_owner=is_owner, **order),
    }
    return render(request, "frontend/dataset_detail.html", context, status=status)


# --- publishing ----------------------------------------------------------------------------


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

    if getattr(request, "upload_error", None):
        return form_page(DatasetUploadForm(), request.upload_error.detail, request.upload_error.status)
    if request.method != "POST":
        return form_page(DatasetUploadForm())
    form = DatasetUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return form_page(form, status=400)
    upload = form.cleaned_data["file"]
    try:
        dataset = dataset_services.dataset_create(
            owner=request.user, file=upload, filename=upload.name, fields=form.listing_fields()
        )
    except DomainError as exc:
        return form_page(form, exc.detail, exc.status)
    messages.success(request, f"Uploaded “{dataset.title}”. Now check the proposed schema and confirm it.")
    target = reverse("frontend:dataset-schema", args=[dataset.pk])
    if _is_xhr(request):
        return JsonResponse({"redirect": target})
    return redirect(target)


@login_required
def dataset_schema(request: HttpRequest, dataset_id: int) -> HttpResponse:
    from frontend.forms import SchemaConfirmForm
    from marketplace.selectors.schema_report import dataset_schema_report

    dataset = _dataset_owned(request, dataset_id)
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
                    actor=request.user,
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
    dataset = _dataset_owned(request, dataset_id)
    form = ListingForm(request.POST or None, initial=ListingForm.initial_for(dataset))
    error, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                dataset = dataset_services.dataset_update(
                    dataset=dataset, actor=request.user, fields=form.listing_fields()
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
    dataset = _dataset_owned(request, dataset_id)
    error, status = None, 200
    form = MockUploadForm()
    if getattr(request, "upload_error", None):
        error, status = request.upload_error.detail, request.upload_error.status
    elif request.method == "POST":
        form = MockUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                dataset_services.dataset_mock_upload(
                    dataset=dataset, actor=request.user, file=upload, filename=upload.name
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
    dataset = _dataset_owned(request, dataset_id)
    try:
        dataset_services.dataset_mock_remove(dataset=dataset, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Mock file removed. Buyers now get synthetic rows from the declared schema.")
    return redirect("frontend:dataset", dataset_id=dataset.pk)


@login_required
def dataset_delete(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = _dataset_owned(request, dataset_id)
    if request.method == "POST":
        title = dataset.title
        try:
            dataset_services.dataset_delete(dataset=dataset, actor=request.user)
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
    dataset = _dataset_visible(request, dataset_id)
    back = _next_or(request, reverse("frontend:dataset", args=[dataset.pk]))
    form = TransitionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown action.")
        return HttpResponseRedirect(back)
    action = form.cleaned_data["action"]
    try:
        moderation_services.dataset_transition(
            dataset=dataset, actor=request.user, action=action, reason=form.cleaned_data["reason"]
        )
    except DomainError as exc:
        messages.error(request, f"“{dataset.title}”: {exc.detail}")
    else:
        messages.success(request, f"“{dataset.title}”: {TRANSITION_DONE[action]}")
    return HttpResponseRedirect(back)


@require_POST
@login_required
def dataset_report(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = _dataset_visible(request, dataset_id)
    form = ReportForm(request.POST)
    reason = form.data.get("reason", "")
    try:
        moderation_services.report_create(dataset=dataset, reporter=request.user, reason=reason)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Thank you. The moderators have your report.")
    return redirect("frontend:dataset", dataset_id=dataset.pk)


@login_required
def my_datasets(request: HttpRequest) -> HttpResponse:
    # The chain state rides along in the same query (a LEFT JOIN on the listing).
    datasets = catalog.datasets_of_owner(owner=request.user).select_related("chain_listing")
    return render(request, "frontend/my_datasets.html", {"page": _page(request, datasets, TABLE_PAGE_SIZE)})


# --- chain: wallets, publishing, orders -------------------------------------------------------


def _chain_deployment() -> tuple[chain_client.Deployment | None, str]:
    """The contracts on the configured chain, or why the chain cannot be used now: pages say so
    instead of failing."""
    try:
        return chain_client.deployment(), ""
    except chain_client.ChainUnavailable as exc:
        return None, exc.detail


def _wallets_context(user) -> dict[str, Any]:
    """The user's wallets with their balances, best effort as in the wallet API."""
    wallet_services.wallet_managed_get_or_create(user=user)
    wallets = list(Wallet.objects.filter(user=user))
    deployment, chain_error = _chain_deployment()
    balances: dict[str, dict[str, Decimal | None]] = {}
    if deployment is not None:
        try:
            raw = wallet_balances(wallets)
        except chain_client.ChainUnavailable:  # the node stopped answering after the first call
            logger.warning("wallet balances unavailable", exc_info=True)
            chain_error = f"The chain at {settings.CHAIN_RPC_URL} is not reachable right now."
        else:
            balances = {
                address: {
                    "ether": Decimal(b["ether"]),
                    "token": None if b["payment_token"] is None else Decimal(b["payment_token"]),
                }
                for address, b in raw.items()
            }
    return {
        "wallets": [(wallet, balances.get(wallet.address)) for wallet in wallets],
        "chain_error": chain_error,
        "faucet": deployment is not None and deployment.has_faucet,
    }


@require_POST
@login_required
def wallet_primary(request: HttpRequest, wallet_id: int) -> HttpResponse:
    wallet = Wallet.objects.filter(pk=wallet_id, user=request.user).first()
    if wallet is None:
        raise NotFound("No such wallet.")
    try:
        wallet_services.wallet_set_primary(user=request.user, wallet=wallet)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{wallet.address} is now your primary wallet.")
    return redirect(reverse("frontend:profile") + "#wallets")


@require_POST
@login_required
def wallet_faucet(request: HttpRequest) -> HttpResponse:
    """Development chains only, like the API's faucet: test ether for gas and test USDC."""
    try:
        wallet_services.wallet_top_up(user=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    except Exception:  # a dev-only convenience: say it failed rather than show a 500
        logger.exception("faucet top-up failed")
        messages.error(request, "The top-up transaction failed; see the server log.")
    else:
        messages.success(request, "Test funds sent to your managed wallet: ether for gas and USDC, where it ran low.")
    return redirect(reverse("frontend:profile") + "#wallets")


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
    user = request.user
    listing = ChainListing.objects.select_related("publish_tx").filter(dataset=dataset).first()
    configured = bool(settings.CHAIN_RPC_URL)
    published = listing is not None and listing.state == ChainListing.State.PUBLISHED
    orderable = published and dataset.status == Dataset.Status.LISTED and not listing.operator_ordering_disabled
    can_buy = configured and orderable and user.is_authenticated and not is_owner
    budget = budget_services.budget_summary(dataset=dataset)
    if algorithm is None:
        algorithm = _algorithm_described(request.GET.get("algorithm"))
    if can_buy and job_form is None:
        job_form = JobForm(algorithm=algorithm, dataset=dataset, epsilon_left=budget.epsilon_left)
    jobs = jobs_on_dataset_visible(dataset=dataset, user=user)
    return {
        "listing": listing,
        "chain_configured": configured,
        "can_publish": is_owner and configured and (listing is None or listing.state == ChainListing.State.FAILED),
        "can_buy": can_buy,
        "login_to_buy": configured and orderable and not user.is_authenticated,
        "algorithms": runner_params.algorithms_describe(),
        "algorithm": algorithm,
        "job_form": job_form if can_buy else None,
        "quote": quote if can_buy else None,
        "job_error": job_error,
        "release_text": order_services.RELEASE_TEXT,
        "chain_polling": listing is not None and listing.state == ChainListing.State.PUBLISHING,
        "budget": _budget_view(budget, dataset.pk),
        "dataset_jobs": _with_titles(list(jobs[:DATASET_JOBS_SHOWN])),
        "dataset_jobs_all": is_owner or (user.is_authenticated and user.is_staff),
        "receipts": _with_titles(list(receipts_on_dataset(dataset=dataset)[:RECEIPTS_SHOWN])),
    }


@require_POST
@login_required
def dataset_publish(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = _dataset_owned(request, dataset_id)
    try:
        listing = publishing_services.dataset_publish(dataset=dataset, user=request.user)
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


def _order_refusal(request: HttpRequest, dataset: Dataset) -> str | None:
    """Why the job form does not apply to this user and dataset, or None."""
    if catalog.can_edit(dataset=dataset, user=request.user):
        return "You cannot order compute on your own dataset."
    if dataset.status != Dataset.Status.LISTED:
        return "Only listed datasets can be ordered."
    listing = ChainListing.objects.filter(dataset=dataset).first()
    if listing is None or listing.state != ChainListing.State.PUBLISHED:
        return "This dataset is not published on chain yet."
    if listing.operator_ordering_disabled:
        return "Ordering of this dataset is closed on chain."
    return None


@require_POST
@login_required
def dataset_job(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The job form: "Get a quote" re-renders the page with the quote; "Pay and run" creates the
    job, paid from the buyer's managed wallet (one transaction), and goes to the job page."""
    dataset = _dataset_visible(request, dataset_id)
    refusal = _order_refusal(request, dataset)
    if refusal:
        messages.error(request, refusal)
        return redirect(reverse("frontend:dataset", args=[dataset.pk]) + "#chain")
    name = request.POST.get("algorithm", "")
    if name not in runner_params.ALGORITHMS:
        return _dataset_page(request, dataset, job_error="Choose one of the algorithms.", status=400)
    algorithm = _algorithm_described(name)
    budget = budget_services.budget_summary(dataset=dataset)
    form = JobForm(request.POST, algorithm=algorithm, dataset=dataset, epsilon_left=budget.epsilon_left)
    if not form.is_valid():
        return _dataset_page(request, dataset, job_form=form, algorithm=algorithm, status=400)
    pay = request.POST.get("intent") == "pay"
    try:
        if pay:
            job = job_services.job_create(
                user=request.user, dataset=dataset, algorithm=name, parameters=form.parameters()
            )
        else:
            quote = job_services.job_quote(
                user=request.user, dataset=dataset, algorithm=name, parameters=form.parameters()
            )
            if request.POST.get("intent") == "preview":
                from compute_to_data.services.preview import job_preview_run

                quote["preview_run"] = job_preview_run(dataset=dataset, algorithm=name, parameters=form.parameters())
    except DomainError as exc:
        error = None if form.attach_error(exc) else exc.detail
        return _dataset_page(request, dataset, job_form=form, algorithm=algorithm, job_error=error, status=exc.status)
    if pay:
        messages.success(request, "Job created. It runs as soon as the payment is confirmed on chain.")
        return redirect(reverse("frontend:job", args=[job.pk]) + "#job-status")
    return _dataset_page(request, dataset, job_form=form, algorithm=algorithm, quote=quote)


@login_required
def my_orders(request: HttpRequest) -> HttpResponse:
    orders = Order.objects.filter(buyer=request.user).select_related("dataset", "job")
    return render(request, "frontend/my_orders.html", {"page": _page(request, orders, TABLE_PAGE_SIZE)})


@login_required
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = order_services.order_get_visible(order_id=order_id, user=request.user)
    tx_hash = order.tx_hash
    if not tx_hash:
        # A managed-wallet order learns its hash when mined; the outgoing transaction has it once sent.
        tx_hash = (
            ChainTransaction.objects.filter(order=order, purpose=ChainTransaction.Purpose.ORDER)
            .exclude(tx_hash="")
            .values_list("tx_hash", flat=True)
            .first()
            or ""
        )
    waiting = order.status in (Order.Status.PENDING, Order.Status.CONFIRMING)
    return render(
        request,
        "frontend/order_detail.html",
        {"order": order, "tx_hash": tx_hash, "waiting": waiting, "is_buyer": order.buyer_id == request.user.pk},
    )


# --- compute jobs --------------------------------------------------------------------------

DATASET_JOBS_SHOWN = 50
RECEIPTS_SHOWN = 20
# The runner's phases (``progress.phase``) in words.
PHASE_LABELS = {
    "provisioning": "Preparing the sandbox",
    "loading": "Loading the data",
    "training": "Training",
    "evaluating": "Evaluating",
    "statistics": "Computing the statistics",
    "writing": "Writing the results",
    "publishing": "Publishing the results",
    "finished": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
METRIC_SOURCES = {"dp": "DP-protected and accounted", "public": "Computed from public inputs"}
# Rows of a curve shown as a table (the chart gets every point, up to CHART_POINTS).
TABLE_POINTS = 60
CHART_POINTS = 1000
MAX_STATISTICS_BYTES = 2 * 1024 * 1024
STATISTICS_ARTIFACT = "statistics.json"


def _algorithm_described(name: str | None) -> dict[str, Any]:
    """One algorithm of the runner's catalogue (the first when ``name`` is not one)."""
    described = runner_params.algorithms_describe()
    return next((a for a in described if a["name"] == name), described[0])


def _algorithm_title(name: str) -> str:
    spec = runner_params.ALGORITHMS.get(name)
    return spec.title if spec else name


def _with_titles(jobs: list[ComputeJob]) -> list[ComputeJob]:
    for job in jobs:
        job.algorithm_title = _algorithm_title(job.algorithm)
    return jobs


def _percent(part: Decimal, whole: Decimal) -> str:
    return f"{float(part / whole * 100):.2f}" if whole else "0"


def _budget_view(summary: budget_services.BudgetSummary, dataset_id: int) -> dict[str, Any]:
    total = summary.epsilon_total
    return {
        "summary": summary,
        "dataset_id": dataset_id,
        "epsilon_left": summary.epsilon_left,
        "delta_total": float(summary.delta_total),
        "delta_used": float(summary.delta_reserved + summary.delta_spent),
        "delta_left": float(summary.delta_left),
        "spent_pct": _percent(min(summary.epsilon_spent, total), total),
        "reserved_pct": _percent(min(summary.epsilon_reserved, max(total - summary.epsilon_spent, Decimal(0))), total),
    }


def _progress_view(job: ComputeJob) -> dict[str, Any]:
    progress = job.progress or {}
    phase = progress.get("phase") or ""
    epsilon = progress.get("epsilon")
    return {
        "percent": job.percent,
        "phase": phase,
        "phase_label": PHASE_LABELS.get(phase, phase.replace("_", " ").capitalize()),
        "epoch": progress.get("epoch") or 0,
        "epochs": progress.get("epochs") or 0,
        "step": progress.get("step") or 0,
        "steps": progress.get("steps") or 0,
        "epsilon": plain_number(round(float(epsilon), 4)) if isinstance(epsilon, int | float) else "0",
    }


def _parameter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_parameter_text(v) for v in value)
    return plain_number(value) if isinstance(value, float) else str(value)


def _job_visible(request: HttpRequest, job_id: int) -> ComputeJob:
    job = job_services.job_get_visible(job_id=job_id, user=request.user)
    job.algorithm_title = _algorithm_title(job.algorithm)
    return job


@login_required
def my_jobs(request: HttpRequest) -> HttpResponse:
    """The jobs I bought; ``?role=provider``: the jobs run on my datasets."""
    as_provider = request.GET.get("role") == "provider"
    if as_provider:
        jobs = ComputeJob.objects.filter(dataset__owner=request.user).select_related("dataset", "buyer")
    else:
        jobs = ComputeJob.objects.filter(buyer=request.user).select_related("dataset")
    page = _page(request, jobs, TABLE_PAGE_SIZE)
    page.object_list = _with_titles(list(page.object_list))
    return render(request, "frontend/my_jobs.html", {"page": page, "as_provider": as_provider})


FAILURE_CAUSES = {
    "buyer": "the buyer's request or input",
    "limit": "a resource limit of the sandbox",
    "provider": "the provider's file",
    "platform": "our fault: not yours",
    "moderator": "a moderator's decision: not yours",
}


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
            "algorithm": _algorithm_described(job.algorithm) if job.algorithm in runner_params.ALGORITHMS else None,
            "parameters": [(name, _parameter_text(value)) for name, value in sorted((job.parameters or {}).items())],
            "progress": _progress_view(job),
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


def _thin(points: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` evenly spaced points, always with the last one."""
    if len(points) <= limit:
        return points
    stride = (len(points) - 1) / (limit - 1)
    return [points[round(i * stride)] for i in range(limit)]


def _shown(value: Any, digits: int = 4) -> Any:
    """A released number or date as text for a table cell: 0.1234567 -> 0.1235, 0.2100 -> 0.21;
    ISO dates pass; None is a dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else value
    return plain_number(round(value, digits)) if isinstance(value, float) else value


def _curves(results: dict[str, Any]) -> dict[str, Any]:
    curve = [p for p in results.get("curve") or [] if isinstance(p, dict)]
    epsilon_curve = [
        {"step": p[0], "epsilon": p[1]}
        for p in results.get("epsilon_curve") or []
        if isinstance(p, list | tuple) and len(p) >= 2
    ]
    has_loss = any(isinstance(p.get("loss"), int | float) for p in curve)
    return {
        "curve": [
            {
                "epoch": p.get("epoch"),
                "step": p.get("step"),
                **{k: _shown(p.get(k)) for k in ("epsilon", "loss", "accuracy")},
            }
            for p in curve
        ]
        if has_loss
        else [],
        "has_accuracy": any(isinstance(p.get("accuracy"), int | float) for p in curve),
        "curve_chart": {
            "epochs": [p.get("epoch") for p in curve],
            "loss": [p.get("loss") for p in curve],
            "accuracy": [p.get("accuracy") for p in curve],
        }
        if has_loss
        else None,
        "epsilon_table": [
            {"step": p["step"], "epsilon": _shown(p["epsilon"])} for p in _thin(epsilon_curve, TABLE_POINTS)
        ],
        "epsilon_thinned": len(epsilon_curve) > TABLE_POINTS,
        "epsilon_chart": {
            "steps": [p["step"] for p in _thin(epsilon_curve, CHART_POINTS)],
            "epsilon": [p["epsilon"] for p in _thin(epsilon_curve, CHART_POINTS)],
        }
        if epsilon_curve
        else None,
    }


def _histogram(raw: Any) -> dict[str, Any] | None:
    """The bars of a released histogram ({categories | edges, counts}): labels, counts and the
    table rows."""
    if not isinstance(raw, dict) or not isinstance(raw.get("counts"), list):
        return None
    counts = raw["counts"]
    edges, categories = raw.get("edges"), raw.get("categories")
    if isinstance(categories, list) and len(categories) == len(counts):
        labels = [str(c) for c in categories]
    elif isinstance(edges, list) and len(edges) == len(counts) + 1:
        last = len(counts) - 1
        labels = [f"[{_shown(edges[i])}, {_shown(edges[i + 1])}{']' if i == last else ')'}" for i in range(len(counts))]
    else:
        labels = [str(i + 1) for i in range(len(counts))]
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in counts):
        return None
    return {"labels": labels, "counts": counts, "rows": list(zip(labels, counts, strict=True))}


def _statistics_view(document: Any) -> list[dict[str, Any]]:
    """The runner's statistics document (``statistics.json``: per column its count, sum, mean,
    histogram and quantiles, each ``{"value", "source", "noise_std"}``) as table rows."""
    columns = document.get("columns") if isinstance(document, dict) else None
    rows = []
    for index, col in enumerate(c for c in columns or [] if isinstance(c, dict)):
        scalars = []
        for key, label in (("count", "Count"), ("sum", "Sum"), ("mean", "Mean")):
            stat = col.get(key)
            if isinstance(stat, dict):
                noise = stat.get("noise_std")
                scalars.append((label, _shown(stat.get("value")), _shown(noise) if noise is not None else None))
        quantiles = col.get("quantiles") if isinstance(col.get("quantiles"), dict) else {}
        levels, values = quantiles.get("levels") or [], quantiles.get("values") or []
        bounds = col.get("bounds") if isinstance(col.get("bounds"), dict) else None
        rows.append(
            {
                "index": index,
                "name": str(col.get("name", "")),
                "type": col.get("type", ""),
                "skipped": col.get("skipped", ""),
                "bounds": (_shown(bounds.get("min")), _shown(bounds.get("max"))) if bounds else None,
                "scalars": scalars,
                "quantiles": [(_shown(q), _shown(v)) for q, v in zip(levels, values, strict=False)],
                "histogram": _histogram(col.get("histogram")),
                "chart_id": f"histogram-data-{index}",
            }
        )
    return rows


def _statistics_released(job: ComputeJob, user) -> dict[str, Any] | None:
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
        "columns": _statistics_view(document),
        "notes": [str(n) for n in notes] if isinstance(notes, list) else [],
    }


@login_required
def job_result(request: HttpRequest, job_id: int) -> HttpResponse:
    """The buyer's results: charts of the DP loss and of epsilon over the steps (each with its
    table), the metrics with where each number comes from, the accounting and the downloads."""
    job = _job_visible(request, job_id)
    job_services.job_require_buyer(job=job, user=request.user)
    if job.status != ComputeJob.Status.FINISHED:
        messages.info(request, "This job has no results yet: they are released when it finishes.")
        return redirect("frontend:job", job_id=job.pk)
    results = job.results or {}
    metrics = [
        {
            **m,
            "shown": _shown(m.get("value")),
            "source_label": METRIC_SOURCES.get(m.get("source"), METRIC_SOURCES["public"]),
        }
        for m in results.get("metrics") or []
        if isinstance(m, dict)
    ]
    return render(
        request,
        "frontend/job_result.html",
        {
            "job": job,
            "results": results,
            "accounting": {
                "epsilon_spent": _shown(results.get("epsilon_spent")),
                "delta": plain_number(results["delta"])
                if isinstance(results.get("delta"), float)
                else _shown(job.delta, 12),
                "accountant": str(results.get("accountant") or "—").upper(),
                "noise_multiplier": _shown(results.get("noise_multiplier")),
                "sample_rate": _shown(results.get("sample_rate"), 6),
                "steps": _shown(results.get("steps")),
            },
            "metrics": metrics,
            "artifacts": list(job.artifacts.all()),
            "statistics": _statistics_released(job, request.user) if job.algorithm == "dp-statistics" else None,
            **_curves(results),
        },
    )


@login_required
def job_artifact(request: HttpRequest, job_id: int, name: str) -> HttpResponse:
    """One released file, to the buyer only, as a download."""
    job = _job_visible(request, job_id)
    artifact, fh = result_services.artifact_open(job=job, user=request.user, name=name)
    response = FileResponse(fh, as_attachment=True, filename=f"job-{job.pk}-{artifact.name}")
    response["X-Content-SHA256"] = artifact.sha256
    return response


# --- moderation ----------------------------------------------------------------------------


@login_required
def moderation_queue(request: HttpRequest) -> HttpResponse:
    _require_staff(request)
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
    queue = moderation_selectors.moderation_queue(actor=request.user, **filters)
    reports = moderation_selectors.reports_visible(actor=request.user, status=Report.Status.OPEN)[:TABLE_PAGE_SIZE]
    edits = moderation_selectors.moderation_queue(actor=request.user, status=moderation_selectors.EDIT_PENDING)
    return render(
        request,
        "frontend/moderation_queue.html",
        {
            "form": form,
            "page": _page(request, queue, TABLE_PAGE_SIZE),
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
    _require_staff(request)
    dataset = _dataset_visible(request, dataset_id)
    approve = request.POST.get("decision") == "approve"
    # The version the moderator read (the form carries it): a swapped edit is not decided blind.
    submitted_at = parse_datetime(request.POST.get("submitted_at", "")[:64])
    try:
        if submitted_at is None:
            raise DomainError("Open the edit again and decide from its page.", code="pending_edit_changed")
        moderation_services.dataset_edit_decide(
            dataset=dataset,
            actor=request.user,
            approve=approve,
            reason=request.POST.get("reason", ""),
            submitted_at=submitted_at,
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Edit approved: the listing shows it now." if approve else "Edit rejected.")
    return HttpResponseRedirect(_next_or(request, reverse("frontend:moderation")))


@require_POST
@login_required
def report_resolve(request: HttpRequest, report_id: int) -> HttpResponse:
    _require_staff(request)
    report = moderation_selectors.reports_visible(actor=request.user).filter(pk=report_id).first()
    if report is None:
        raise NotFound("No such report.")
    form = ResolveReportForm(request.POST)
    dismiss = form.is_valid() and form.cleaned_data["decision"] == "dismiss"
    try:
        moderation_services.report_resolve(
            report=report, actor=request.user, resolution=form.data.get("resolution", ""), dismiss=dismiss
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Report dismissed." if dismiss else "Report resolved.")
    return HttpResponseRedirect(_next_or(request, reverse("frontend:moderation")))


@login_required
def moderation_log(request: HttpRequest) -> HttpResponse:
    entries = moderation_selectors.moderation_log(actor=request.user)
    return render(request, "frontend/moderation_log.html", {"page": _page(request, entries, TABLE_PAGE_SIZE)})
