"""The provider's dashboard page: per dataset the privacy budget and the earnings, jobs run on
their data per day, and the latest jobs. Charts are drawn by Chart.js from JSON in the page; every
chart has a table with the same numbers."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from compute_to_data import selectors_dashboard as dashboard
from frontend.presenters import budget_view, dashboard_charts, with_titles
from frontend.views.common import signed_in_user

DAY_CHOICES = (7, 30, 90)


@login_required
def provider_dashboard(request: HttpRequest) -> HttpResponse:
    try:
        days = int(request.GET.get("days", dashboard.DEFAULT_DAYS))
    except ValueError:
        days = dashboard.DEFAULT_DAYS
    if days not in DAY_CHOICES:
        days = dashboard.DEFAULT_DAYS
    figures = dashboard.provider_dashboard(provider=signed_in_user(request), days=days)
    with_titles(figures.recent_jobs)
    shown = [g for g in dashboard.JOB_GROUPS if figures.jobs.by_group.get(g)]
    return render(
        request,
        "frontend/dashboard.html",
        {
            "dash": figures,
            "rows": [(f, budget_view(f.budget, f.dataset.pk)) for f in figures.datasets],
            "has_earnings": any(not e.is_empty for e in figures.totals),
            # The per-day table: days with jobs only, a column per status that occurs.
            "day_columns": [dashboard.JOB_GROUPS[g][0] for g in shown],
            "day_rows": [
                (d.day, [d.by_group.get(g, 0) for g in shown], d.total) for d in figures.jobs_per_day if d.total
            ],
            # A horizontal bar per dataset: the chart grows with them.
            "budget_chart_px": min(120 + 48 * len(figures.datasets), 560),
            "jobs_in_window": sum(d.total for d in figures.jobs_per_day),
            "day_choices": DAY_CHOICES,
            "charts": dashboard_charts(figures),
        },
    )
