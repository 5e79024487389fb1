"""Wallet pages: the profile's wallets (balances, primary, the dev chain's faucet) and the job
form's "Pay with my browser wallet" step. The browser's wallet script (frontend/assets/wallet.js)
does the rest through the REST API: Sign-In with Ethereum, ``POST /api/v1/orders/prepare/``
(permit, then transaction) and ``POST /api/v1/jobs/`` with the transaction hash."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from chain import client as chain_client
from chain.models import Wallet
from chain.selectors import wallet_balances
from chain.services import wallets as wallet_services
from common.errors import DomainError, NotFound
from compute_to_data.runner import params as runner_params
from compute_to_data.services import budget as budget_services
from compute_to_data.services import jobs as job_services
from frontend.forms import JobForm
from frontend.presenters import algorithm_described
from frontend.views.common import dataset_visible, order_refusal, signed_in_user
from marketplace.models import User

logger = logging.getLogger(__name__)


def _chain_deployment() -> tuple[chain_client.Deployment | None, str]:
    """The contracts on the configured chain, or why the chain cannot be used now: pages say so
    instead of failing."""
    try:
        return chain_client.deployment(), ""
    except chain_client.ChainUnavailable as exc:
        return None, exc.detail


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def wallets_context(user: User) -> dict[str, Any]:
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
                    # wallet_balances types both as optional: only the token's is None (none deployed).
                    "ether": _decimal(b["ether"]),
                    "token": _decimal(b["payment_token"]),
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
    user = signed_in_user(request)
    wallet = Wallet.objects.filter(pk=wallet_id, user=user).first()
    if wallet is None:
        raise NotFound("No such wallet.")
    try:
        wallet_services.wallet_set_primary(user=user, wallet=wallet)
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
        wallet_services.wallet_top_up(user=signed_in_user(request))
    except DomainError as exc:
        messages.error(request, exc.detail)
    except Exception:  # a dev-only convenience: say it failed rather than show a 500
        logger.exception("faucet top-up failed")
        messages.error(request, "The top-up transaction failed; see the server log.")
    else:
        messages.success(request, "Test funds sent to your managed wallet: ether for gas and USDC, where it ran low.")
    return redirect(reverse("frontend:profile") + "#wallets")


def _error(code: str, detail: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, **extra}, status=status)


@require_POST
@login_required
def dataset_job_wallet(request: HttpRequest, dataset_id: int) -> JsonResponse:
    """The job form checked as for "Get a quote", answered as JSON: the normalised parameters, the
    hash the order must commit to (exactly what ``POST /api/v1/jobs/`` recomputes from them), and
    the epsilon and delta to order. Nothing is ordered or reserved."""
    dataset = dataset_visible(request, dataset_id)
    refusal = order_refusal(request, dataset)
    if refusal:
        return _error("not_orderable", refusal, 409)
    name = request.POST.get("algorithm", "")
    if name not in runner_params.ALGORITHMS:
        return _error("invalid_parameters", "Choose one of the algorithms.", 400)
    budget = budget_services.budget_summary(dataset=dataset)
    form = JobForm(request.POST, algorithm=algorithm_described(name), dataset=dataset, epsilon_left=budget.epsilon_left)
    if not form.is_valid():
        errors = {field: [e["message"] for e in errs] for field, errs in form.errors.get_json_data().items()}
        detail = " ".join(
            f"{form.fields[f].label if f in form.fields else f}: {' '.join(m)}" for f, m in errors.items()
        )
        return _error("invalid_parameters", f"Please correct the parameters. {detail}", 400, errors=errors)
    try:
        terms = job_services.job_terms(dataset=dataset, algorithm=name, parameters=form.parameters())
    except DomainError as exc:
        return _error(exc.code, exc.detail, exc.status, **exc.extra)
    return JsonResponse(
        {
            "dataset": dataset.pk,
            "algorithm": name,
            "parameters": terms.parameters,
            "params_hash": terms.params_hash,
            "epsilon": str(terms.epsilon),
            "delta": terms.delta,
        }
    )
