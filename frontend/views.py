"""Server-rendered pages. Each view parses input, calls one selector or service, and renders;
``DomainError``s from the services come back to the user with their ``detail``."""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse
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
from chain.units import units_to_epsilon
from frontend.forms import (
    CatalogueFilterForm,
    DatasetUploadForm,
    ListingForm,
    LoginForm,
    MockUploadForm,
    ModerationFilterForm,
    OrderForm,
    ProfileForm,
    ReportForm,
    ResolveReportForm,
    SchemaColumnForm,
    SchemaFormSet,
    SignUpForm,
    TransitionForm,
)
from marketplace.api.pagination import CachedCountPaginator
from marketplace.errors import DomainError, FileTooLarge, NotFound, PermissionDenied
from marketplace.models import Dataset, Report
from marketplace.selectors import catalog
from marketplace.selectors import moderation as moderation_selectors
from marketplace.services import datasets as dataset_services
from marketplace.services import moderation as moderation_services
from marketplace.services.accounts import api_token_regenerate, user_profile_update
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
            except FileTooLarge as exc:
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
        messages.success(request, f"Welcome, {user.username}. Your account is ready.")
        return redirect("frontend:catalogue")
    return render(request, "frontend/signup.html", {"form": form}, status=400 if form.errors else 200)


class LoginView(auth_views.LoginView):
    template_name = "frontend/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        user_profile_update(
            user=request.user, **{k: form.cleaned_data.get(k, "") for k in ("email", "organisation", "bio")}
        )
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
    """The dataset page; ``order`` carries the buy form's state (bound form, quote, error) after a POST."""
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
    dataset = _dataset_owned(request, dataset_id)
    source = dataset.declared_schema or dataset.proposed_schema or {}
    columns = source.get("columns", [])
    initial = [SchemaColumnForm.initial_for(c) for c in columns]
    formset = SchemaFormSet(request.POST or None, initial=initial, prefix="col")
    error, status = None, 200
    if request.method == "POST":
        if not formset.is_valid() or len(formset.forms) != len(columns):
            error, status = "Please correct the highlighted fields.", 400
        else:
            schema = {"columns": [f.column_spec(c["name"]) for f, c in zip(formset.forms, columns, strict=True)]}
            try:
                dataset_services.dataset_schema_declare(dataset=dataset, actor=request.user, schema=schema)
            except DomainError as exc:
                error, status = exc.detail, exc.status
            else:
                messages.success(request, "Schema confirmed. It is now part of the public listing.")
                return redirect("frontend:dataset", dataset_id=dataset.pk)
    rows = list(zip(columns, formset.forms, strict=False))
    return render(
        request,
        "frontend/dataset_schema.html",
        {
            "dataset": dataset,
            "formset": formset,
            "rows": rows,
            "error": error,
            "editable": dataset.status in EDITABLE_STATUSES,
            "confirmed": bool(dataset.declared_schema),
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
                dataset_services.dataset_update(dataset=dataset, actor=request.user, fields=form.listing_fields())
            except DomainError as exc:
                error, status = exc.detail, exc.status
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
    order_form: OrderForm | None = None,
    quote: order_services.Quote | None = None,
    order_error: str | None = None,
) -> dict[str, Any]:
    """The dataset page's "On chain" panel and buy form. Database only: no call to the node."""
    user = request.user
    listing = ChainListing.objects.select_related("publish_tx").filter(dataset=dataset).first()
    configured = bool(settings.CHAIN_RPC_URL)
    published = listing is not None and listing.state == ChainListing.State.PUBLISHED
    orderable = published and dataset.status == Dataset.Status.LISTED and not listing.operator_ordering_disabled
    can_buy = configured and orderable and user.is_authenticated and not is_owner
    if can_buy and order_form is None:
        order_form = OrderForm(dataset=dataset, epsilon_left=units_to_epsilon(listing.epsilon_left_units))
    return {
        "listing": listing,
        "chain_configured": configured,
        "can_publish": is_owner and configured and (listing is None or listing.state == ChainListing.State.FAILED),
        "can_buy": can_buy,
        "login_to_buy": configured and orderable and not user.is_authenticated,
        "order_form": order_form if can_buy else None,
        "quote": quote if can_buy else None,
        "quote_left_after": max(quote.epsilon_left - quote.epsilon, Decimal(0)) if quote else None,
        "order_error": order_error,
        "release_text": order_services.RELEASE_TEXT,
        "chain_polling": listing is not None and listing.state == ChainListing.State.PUBLISHING,
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
    """Why the buy form does not apply to this user and dataset, or None."""
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
def dataset_order(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The buy form: "Get a quote" re-renders the page with the quote; "Pay and order" places the
    order from the buyer's managed wallet (one transaction) and goes to the order page."""
    dataset = _dataset_visible(request, dataset_id)
    refusal = _order_refusal(request, dataset)
    if refusal:
        messages.error(request, refusal)
        return redirect(reverse("frontend:dataset", args=[dataset.pk]) + "#chain")
    form = OrderForm(request.POST, dataset=dataset)
    if not form.is_valid():
        return _dataset_page(request, dataset, order_form=form, status=400)
    data = form.cleaned_data
    algorithm_hash = order_services.algorithm_hash(data["algorithm"], {})
    try:
        # Orders from the page are paid by the managed wallet, so that is the wallet quoted.
        wallet = wallet_services.wallet_managed_get_or_create(user=request.user)
        if request.POST.get("intent") == "pay":
            order = order_services.order_create(
                user=request.user,
                dataset=dataset,
                epsilon=data["epsilon"],
                delta=data["delta"],
                algorithm_hash_hex=algorithm_hash,
            )
        else:
            quote = order_services.order_quote(
                user=request.user,
                dataset=dataset,
                epsilon=data["epsilon"],
                delta=data["delta"],
                algorithm_hash_hex=algorithm_hash,
                wallet_address=wallet.address,
            )
    except DomainError as exc:
        return _dataset_page(request, dataset, order_form=form, order_error=exc.detail, status=exc.status)
    if request.POST.get("intent") == "pay":
        messages.success(request, "Order placed. It is accepted once the payment is confirmed on chain.")
        # Its own fragment: a redirect would otherwise keep the form's "#buy".
        return redirect(reverse("frontend:order", args=[order.pk]) + "#order-status")
    return _dataset_page(request, dataset, order_form=form, quote=quote)


@login_required
def my_orders(request: HttpRequest) -> HttpResponse:
    orders = Order.objects.filter(buyer=request.user).select_related("dataset")
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
    return render(
        request,
        "frontend/moderation_queue.html",
        {
            "form": form,
            "page": _page(request, queue, TABLE_PAGE_SIZE),
            "reports": reports,
            "error": error,
            "current_status": filters.get("status", Dataset.Status.PENDING_REVIEW),
        },
        status=status,
    )


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
