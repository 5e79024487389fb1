"""The dataset's public privacy ledger page: every release on the dataset with running totals
against its caps, each checked against the chain (the same figures as GET datasets/{id}/ledger/)."""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from compute_to_data.runner import params as runner_params
from compute_to_data.selectors import job_ids_named_for
from compute_to_data.selectors_ledger import ledger_for
from marketplace.selectors import catalog


def _pct(part: Decimal | float, whole: Decimal | float) -> float:
    whole = float(whole)
    return 0.0 if whole <= 0 else round(min(float(part) / whole, 1.0) * 100, 1)


def dataset_ledger(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
    ledger = ledger_for(dataset=dataset)
    named = job_ids_named_for(dataset=dataset, user=request.user, job_ids=[e.job_id for e in ledger.entries])
    rows = []
    for entry in ledger.entries:
        spec = runner_params.ALGORITHMS.get(entry.algorithm)
        rows.append(
            {
                "entry": entry,
                "title": spec.title if spec else entry.algorithm,
                "show_job": entry.job_id in named,
                "epsilon_pct": _pct(entry.epsilon_total_after, ledger.epsilon_cap),
                "delta_pct": _pct(entry.delta_total_after, ledger.delta_cap),
            }
        )
    return render(
        request,
        "frontend/dataset_ledger.html",
        {
            "dataset": dataset,
            "ledger": ledger,
            "rows": rows,
            "epsilon_pct": _pct(ledger.epsilon_spent, ledger.epsilon_cap),
            "epsilon_reserved_pct": _pct(ledger.epsilon_reserved, ledger.epsilon_cap),
            "delta_pct": _pct(ledger.delta_spent, ledger.delta_cap),
            "delta_reserved_pct": _pct(ledger.delta_reserved, ledger.delta_cap),
            "delta_cap": float(ledger.delta_cap),
            "delta_spent": float(ledger.delta_spent),
        },
    )
