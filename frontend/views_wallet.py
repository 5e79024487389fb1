"""Pages' side of self-custody: the job form's "Pay with my browser wallet" step. The browser's
wallet script (frontend/assets/wallet.js) does the rest through the REST API: Sign-In with
Ethereum, ``POST /api/v1/orders/prepare/`` (permit, then transaction) and ``POST /api/v1/jobs/``
with the transaction hash."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from compute_to_data.runner import params as runner_params
from compute_to_data.services import budget as budget_services
from compute_to_data.services import jobs as job_services
from frontend.forms import JobForm
from frontend.views import _algorithm_described, _dataset_visible, _order_refusal
from marketplace.errors import DomainError


def _error(code: str, detail: str, status: int, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, **extra}, status=status)


@require_POST
@login_required
def dataset_job_wallet(request: HttpRequest, dataset_id: int) -> JsonResponse:
    """The job form checked as for "Get a quote", answered as JSON: the normalised parameters, the
    hash the order must commit to (exactly what ``POST /api/v1/jobs/`` recomputes from them), and
    the epsilon and delta to order. Nothing is ordered or reserved."""
    dataset = _dataset_visible(request, dataset_id)
    refusal = _order_refusal(request, dataset)
    if refusal:
        return _error("not_orderable", refusal, 409)
    name = request.POST.get("algorithm", "")
    if name not in runner_params.ALGORITHMS:
        return _error("invalid_parameters", "Choose one of the algorithms.", 400)
    budget = budget_services.budget_summary(dataset=dataset)
    form = JobForm(
        request.POST, algorithm=_algorithm_described(name), dataset=dataset, epsilon_left=budget.epsilon_left
    )
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
