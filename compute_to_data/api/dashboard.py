"""``GET /api/v1/me/dashboard/``: the provider's dashboard as JSON, the same figures as the page."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chain.units import units_to_price
from common.api.errors import error_responses as _errors
from compute_to_data import selectors_dashboard as dashboard
from compute_to_data.models import ComputeJob


def _amount(*, source: str | None = None, help_text: str | None = None) -> serializers.DecimalField:
    """An amount in the payment token's units (6 decimals, as the chain keeps them)."""
    return serializers.DecimalField(max_digits=40, decimal_places=6, source=source, help_text=help_text)


def _epsilon(
    *, source: str | None = None, allow_null: bool = False, help_text: str | None = None
) -> serializers.DecimalField:
    """An epsilon figure (micro-epsilon precision, as the chain keeps it)."""
    return serializers.DecimalField(
        max_digits=16, decimal_places=6, source=source, allow_null=allow_null, help_text=help_text
    )


EXAMPLE = {
    "days": 30,
    "since": "2026-01-08",
    "totals": [
        {
            "token": "USDC",
            "paid": "48.750000",
            "fees": "1.250000",
            "in_escrow": "0.000000",
            "refunded": "25.000000",
            "orders_receipted": 2,
            "orders_in_escrow": 0,
            "orders_refunded": 1,
        }
    ],
    "jobs": {"total": 3, "by_status": {"finished": 2, "failed": 1}},
    "datasets": [
        {
            "id": 1,
            "title": "Cardiology outpatients 2019-2023",
            "status": "listed",
            "price": "25.000000",
            "token": "USDC",
            "on_chain": True,
            "budget": {
                "epsilon_total": "8.000000",
                "epsilon_per_job": "1.000000",
                "delta": 1e-05,
                "epsilon_spent": "1.500000",
                "epsilon_reserved": "0.000000",
                "epsilon_left": "6.500000",
                "epsilon_left_on_chain": "6.500000",
            },
            "earnings": {
                "token": "USDC",
                "paid": "48.750000",
                "fees": "1.250000",
                "in_escrow": "0.000000",
                "refunded": "25.000000",
                "orders_receipted": 2,
                "orders_in_escrow": 0,
                "orders_refunded": 1,
            },
            "jobs": {"total": 3, "by_status": {"finished": 2, "failed": 1}},
        }
    ],
    "jobs_per_day": [{"date": "2026-02-06", "total": 3, "by_status": {"finished": 2, "failed": 1}}],
    "recent_jobs": [
        {
            "id": 3,
            "dataset": 1,
            "dataset_title": "Cardiology outpatients 2019-2023",
            "buyer": "buyer",
            "algorithm": "dp-statistics",
            "epsilon": "0.5000",
            "epsilon_spent": "0.500000",
            "status": "finished",
            "settlement": "receipt",
            "order_status": "receipted",
            "amount": "25.000000",
            "receipt_tx_hash": "0x5e2f0c8d3b1a4e6f7a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f7",
            "receipt_url": "/api/v1/jobs/3/receipt/",
            "created_at": "2026-02-06T10:21:07.412000Z",
        }
    ],
}


class EarningsSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The payment token's symbol; amounts are in its units.")
    paid = _amount(help_text="Released to you by receipts on chain (ReceiptRecorded.providerAmount: price less fee).")
    fees = _amount(help_text="The marketplace's fee on those receipted orders.")
    in_escrow = _amount(
        help_text="Paid by buyers and held by the datatoken until a receipt or a refund (whole amount)."
    )
    refunded = _amount(help_text="Returned to buyers (jobs that ended before the data).")
    orders_receipted = serializers.IntegerField()
    orders_in_escrow = serializers.IntegerField()
    orders_refunded = serializers.IntegerField()


class JobCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(
        child=serializers.IntegerField(),
        source="by_group",
        help_text="Counts by finished, active (created to publishing), failed, cancelled, rejected; zeros left out.",
    )


class BudgetFiguresSerializer(serializers.Serializer):
    """Read from a ``DatasetFigures``: its budget summary and what the chain has left."""

    epsilon_total = _epsilon(source="budget.epsilon_total")
    epsilon_per_job = _epsilon(source="budget.epsilon_per_job")
    delta = serializers.FloatField(source="budget.delta")
    epsilon_spent = _epsilon(source="budget.epsilon_spent")
    epsilon_reserved = _epsilon(source="budget.epsilon_reserved", help_text="Held by jobs that are running.")
    epsilon_left = _epsilon(source="budget.epsilon_left")
    epsilon_left_on_chain = _epsilon(
        allow_null=True, help_text="What the datatoken still lets be ordered; null when not on chain."
    )


class DatasetFiguresSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="dataset.pk")
    title = serializers.CharField(source="dataset.title")
    status = serializers.CharField(source="dataset.status")
    price = _amount(source="dataset.price")
    token = serializers.CharField(source="dataset.price_token")
    on_chain = serializers.BooleanField(help_text="Published on chain (data NFT and datatoken minted).")
    budget = BudgetFiguresSerializer(source="*", help_text="Privacy budget: spent, reserved by running jobs, left.")
    earnings = EarningsSerializer()
    jobs = JobCountsSerializer()


class DayCountsSerializer(serializers.Serializer):
    date = serializers.DateField(source="day")
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField(), source="by_group")


class RecentJobSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    dataset = serializers.IntegerField(source="dataset_id")
    dataset_title = serializers.CharField(source="dataset.title")
    buyer = serializers.CharField(source="buyer.username")
    algorithm = serializers.CharField()
    epsilon = serializers.DecimalField(max_digits=10, decimal_places=4)
    epsilon_spent = _epsilon(allow_null=True)
    status = serializers.CharField(help_text="The job's status (as in GET jobs/{id}/).")
    settlement = serializers.CharField(help_text="none, receipt (recorded on chain) or refund.")
    order_status = serializers.CharField(source="order.status", default=None, allow_null=True)
    amount = serializers.SerializerMethodField()
    receipt_tx_hash = serializers.SerializerMethodField()
    receipt_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_amount(self, job: ComputeJob) -> str | None:
        return None if job.order is None else str(units_to_price(job.order.amount_units))

    def get_receipt_tx_hash(self, job: ComputeJob) -> str | None:
        return ((job.order.receipt or {}).get("tx_hash") if job.order else None) or None

    def get_receipt_url(self, job: ComputeJob) -> str | None:
        """The receipt with every hash re-checked against the chain (once the job has one)."""
        return reverse("compute-api:job-receipt", args=[job.pk]) if job.result_hash else None


class DashboardSerializer(serializers.Serializer):
    days = serializers.IntegerField(help_text="Length of the jobs_per_day window.")
    since = serializers.DateField(help_text="First day of jobs_per_day.")
    totals = EarningsSerializer(many=True, help_text="Earnings over all your datasets, one entry per payment token.")
    jobs = JobCountsSerializer(help_text="Jobs run on your datasets, all time.")
    datasets = DatasetFiguresSerializer(many=True)
    jobs_per_day = DayCountsSerializer(many=True, help_text="Jobs created on your datasets per day (every day).")
    recent_jobs = RecentJobSerializer(many=True, help_text=f"The latest {dashboard.RECENT_JOBS} jobs.")


class ProviderDashboardView(APIView):
    permission_classes = [IsAuthenticated]

    class Query(serializers.Serializer):
        days = serializers.IntegerField(min_value=1, max_value=dashboard.MAX_DAYS, default=dashboard.DEFAULT_DAYS)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "days",
                OpenApiTypes.INT,
                description=f"Days of jobs_per_day, ending today (1 to {dashboard.MAX_DAYS}; default "
                f"{dashboard.DEFAULT_DAYS}).",
            )
        ],
        responses={200: DashboardSerializer, **_errors(400, 401)},
        tags=["compute"],
        summary="My provider dashboard: per dataset the budget left and the earnings (paid, in escrow, "
        "refunded), jobs on my data per day, the latest jobs",
        description="Amounts are in the payment token's units, from the orders verified on chain: `paid` is what "
        "receipts released to you (the `providerAmount` of `ReceiptRecorded`, price less the marketplace fee), "
        "`in_escrow` the whole amount of orders paid and not settled yet, `refunded` what went back to buyers. "
        "Only your own datasets are counted.",
        examples=[OpenApiExample("A provider with two receipted jobs and one refund", value=EXAMPLE)],
    )
    def get(self, request):
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        figures = dashboard.provider_dashboard(provider=request.user, days=query.validated_data["days"])
        return Response(DashboardSerializer(figures).data)
