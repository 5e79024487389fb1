"""The dataset's public privacy ledger page: every release on the dataset with running totals
against its caps, each checked against the chain (the same figures as GET datasets/{id}/ledger/)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from compute_to_data.selectors import job_ids_named_for
from compute_to_data.selectors_ledger import ledger_for
from frontend.presenters import algorithm_title, ledger_percent
from frontend.views.common import dataset_visible, user_or_none


def dataset_ledger(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_visible(request, dataset_id)
    ledger = ledger_for(dataset=dataset)
    user = user_or_none(request)
    # The selector takes a signed-in user; it names no job to a visitor either.
    job_ids = [e.job_id for e in ledger.entries]
    named = job_ids_named_for(dataset=dataset, user=user, job_ids=job_ids)
    rows = []
    for entry in ledger.entries:
        rows.append(
            {
                "entry": entry,
                "title": algorithm_title(entry.algorithm),
                "show_job": entry.job_id in named,
                "epsilon_pct": ledger_percent(entry.epsilon_total_after, ledger.epsilon_cap),
                "delta_pct": ledger_percent(entry.delta_total_after, ledger.delta_cap),
            }
        )
    return render(
        request,
        "frontend/dataset_ledger.html",
        {
            "dataset": dataset,
            "ledger": ledger,
            "rows": rows,
            "epsilon_pct": ledger_percent(ledger.epsilon_spent, ledger.epsilon_cap),
            "epsilon_reserved_pct": ledger_percent(ledger.epsilon_reserved, ledger.epsilon_cap),
            "delta_pct": ledger_percent(ledger.delta_spent, ledger.delta_cap),
            "delta_reserved_pct": ledger_percent(ledger.delta_reserved, ledger.delta_cap),
            "delta_cap": float(ledger.delta_cap),
            "delta_spent": float(ledger.delta_spent),
        },
    )
