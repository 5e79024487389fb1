"""REST API of compute-to-data: algorithms, budgets, jobs (create, follow, cancel), results,
logs and receipts. Views parse input, call one service or selector, and render output."""

from __future__ import annotations

import dataclasses

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from chain.models import Order
from chain.services import orders as order_services
from chain.units import HASH_PATTERN
from common.api.errors import PAGE_NOT_FOUND
from common.api.errors import error_responses as _errors
from common.errors import NotFound
from common.pagination import StandardPagination
from compute_to_data.api.serializers import ArtifactSerializer, CheckSerializer, JobSerializer, LogEntrySerializer
from compute_to_data.models import ComputeJob
from compute_to_data.runner import params as runner_params
from compute_to_data.selectors import job_ids_named_for, jobs_on_dataset_visible, receipts_on_dataset
from compute_to_data.services import budget as budget_services
from compute_to_data.services import jobs as job_services
from compute_to_data.services import results as result_services
from marketplace.selectors import catalog

EXAMPLE_JOB = {
    "dataset": 1,
    "algorithm": "dp-logistic-regression",
    "parameters": {"target": "smoker", "epochs": 5, "batch_size": 64, "epsilon": 0.5},
}


class AlgorithmsView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        tags=["compute"],
        summary="The built-in DP algorithms, what each releases, and their parameters with bounds and defaults",
    )
    def get(self, request):
        return Response({"algorithms": runner_params.algorithms_describe(), "release": order_services.RELEASE_TEXT})


class BudgetSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    epsilon_total = serializers.DecimalField(max_digits=12, decimal_places=6)
    epsilon_per_job = serializers.DecimalField(max_digits=12, decimal_places=6)
    delta = serializers.FloatField()
    epsilon_reserved = serializers.DecimalField(max_digits=12, decimal_places=6)
    epsilon_spent = serializers.DecimalField(max_digits=12, decimal_places=6)
    epsilon_left = serializers.DecimalField(max_digits=12, decimal_places=6)
    delta_total = serializers.FloatField(help_text="Cumulative delta cap of the dataset (delta composes across jobs).")
    delta_reserved = serializers.FloatField()
    delta_spent = serializers.FloatField()
    delta_left = serializers.FloatField()
    jobs = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per job: id, status, epsilon reserved, epsilon spent and budget state. The provider sees every "
        "job on the dataset, a buyer their own.",
    )


class DatasetBudgetView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: BudgetSerializer, **_errors(404)},
        tags=["compute"],
        summary="A dataset's privacy budget: caps, reserved, spent and left, per dataset and per job",
    )
    def get(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        summary = budget_services.budget_summary(dataset=dataset)
        jobs = jobs_on_dataset_visible(dataset=dataset, user=request.user)
        return Response(
            BudgetSerializer(
                {
                    "dataset": dataset.pk,
                    **dataclasses.asdict(summary),
                    "epsilon_left": summary.epsilon_left,
                    "delta_total": float(summary.delta_total),
                    "delta_reserved": float(summary.delta_reserved),
                    "delta_spent": float(summary.delta_spent),
                    "delta_left": float(summary.delta_left),
                    "jobs": [
                        {
                            "id": j.pk,
                            "algorithm": j.algorithm,
                            "status": j.status,
                            "epsilon": str(j.epsilon),
                            "epsilon_spent": None if j.epsilon_spent is None else str(j.epsilon_spent),
                            "budget_state": j.budget_state,
                        }
                        for j in jobs[:200]
                    ],
                }
            ).data
        )


class JobInput(serializers.Serializer):
    dataset = serializers.IntegerField()
    algorithm = serializers.ChoiceField(choices=sorted(runner_params.ALGORITHMS))
    parameters = serializers.DictField(required=False, default=dict, help_text="See GET algorithms/.")


class JobQuoteView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    class QuoteOutput(serializers.Serializer):
        parameters = serializers.DictField(help_text="Normalised parameters (defaults filled in).")
        params_hash = serializers.CharField(help_text="What the order commits to on chain (its algorithm hash).")
        epsilon = serializers.CharField()
        delta = serializers.FloatField()
        epsilon_left = serializers.CharField(help_text="Left in the dataset's budget (marketplace books).")
        epsilon_left_after = serializers.CharField(help_text="Left once this job has run.")
        delta_left = serializers.FloatField(help_text="Cumulative delta left in the dataset's budget.")
        delta_left_after = serializers.FloatField(help_text="Cumulative delta left once this job has run.")
        release = serializers.CharField(help_text="What the job releases (and what it never does).")
        problems = serializers.ListField(
            child=serializers.CharField(), help_text="Why it cannot go ahead; empty if it can."
        )
        order = serializers.DictField(help_text="The order quote: price, fee, wallet balance, problems.")
        preview = serializers.DictField(
            help_text="Accuracy to expect, from public figures only: for dp-statistics the 95% error bound of every "
            "released number; for training the noise multiplier, steps and sample rate."
        )

    @extend_schema(
        request=JobInput,
        responses={200: QuoteOutput, **_errors(400, 401, 404, 409, 503)},
        tags=["compute"],
        summary="Check a job's parameters and quote it before paying (price, epsilon, what will be released)",
        description="Integrators paying from their own wallet send `buyAndOrder` with `params_hash` as the "
        "algorithm hash, then `POST jobs/` with the transaction hash.",
        examples=[OpenApiExample("Logistic regression", value=EXAMPLE_JOB, request_only=True)],
    )
    def post(self, request):
        data = JobInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = catalog.dataset_get_visible(dataset_id=v["dataset"], user=request.user)
        quote = job_services.job_quote(
            user=request.user, dataset=dataset, algorithm=v["algorithm"], parameters=v["parameters"]
        )
        order = dataclasses.asdict(quote["order"])
        return Response(
            {
                "parameters": quote["parameters"],
                "params_hash": quote["params_hash"],
                "epsilon": str(quote["epsilon"]),
                "delta": quote["delta"],
                "epsilon_left": str(quote["epsilon_left"]),
                "epsilon_left_after": str(quote["epsilon_left_after"]),
                "delta_left": float(quote["delta_left"]),
                "delta_left_after": float(quote["delta_left_after"]),
                "release": quote["release"],
                "preview": quote["preview"],
                "problems": quote["problems"],
                "order": {k: v if isinstance(v, int | float | list | bool) else str(v) for k, v in order.items()},
            }
        )


class JobListCreateView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]
    pagination_class = StandardPagination  # also what the schema's paginated list is drawn from

    class JobCreateInput(JobInput):
        order = serializers.IntegerField(required=False, help_text="An order of yours to pay with (already placed).")
        tx_hash = serializers.RegexField(
            HASH_PATTERN,
            required=False,
            help_text="Your own wallet sent buyAndOrder with the quote's params_hash: its transaction hash.",
        )
        evaluation_csv = serializers.CharField(
            required=False,
            allow_blank=True,
            trim_whitespace=False,
            max_length=job_services.EVALUATION_CSV_MAX_CHARS,
            help_text="Training algorithms: your own evaluation rows as CSV text (header with the features and the "
            "target). Metrics on them are exact and labelled public; they are not DP and cost no budget.",
        )

        def validate(self, attrs):
            if attrs.get("order") and attrs.get("tx_hash"):
                raise serializers.ValidationError("Give an order or a tx_hash, not both.")
            return attrs

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "role",
                str,
                enum=["buyer", "provider"],
                description="buyer (default): my jobs; provider: jobs on my datasets.",
            )
        ],
        responses={200: JobSerializer(many=True), **_errors(401), **PAGE_NOT_FOUND},
        tags=["compute"],
        summary="My compute jobs (newest first); ?role=provider: jobs on my datasets",
    )
    def get(self, request):
        paginator = self.pagination_class()
        if request.query_params.get("role") == "provider":
            qs = ComputeJob.objects.filter(dataset__owner=request.user)
        else:
            qs = ComputeJob.objects.filter(buyer=request.user)
        page = paginator.paginate_queryset(qs.select_related("order"), request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True).data)

    @extend_schema(
        request=JobCreateInput,
        responses={202: JobSerializer, **_errors(400, 401, 404, 409, 503)},
        tags=["compute"],
        summary="Order a compute job: pay on chain, then it runs in a sandbox and releases only DP results",
        description="Without `order` or `tx_hash` the marketplace pays from your managed wallet (one transaction). "
        "The answer comes at once with the job `created`; it becomes `paid`, `queued`, `provisioning`, "
        "`running`, `publishing` and `finished` (or `failed`, `cancelled`, `rejected` with a reason). "
        "Poll `GET jobs/{id}/` for status and progress.",
        examples=[OpenApiExample("Managed wallet", value=EXAMPLE_JOB, request_only=True)],
    )
    def post(self, request):
        data = self.JobCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = catalog.dataset_get_visible(dataset_id=v["dataset"], user=request.user)
        order = None
        if v.get("order"):
            order = Order.objects.filter(pk=v["order"], buyer=request.user).first()
            if order is None:
                raise NotFound("No such order.")
        job = job_services.job_create(
            user=request.user,
            dataset=dataset,
            algorithm=v["algorithm"],
            parameters=v["parameters"],
            order=order,
            tx_hash=v.get("tx_hash"),
            evaluation_csv=v.get("evaluation_csv") or None,
        )
        job = ComputeJob.objects.select_related("order").get(pk=job.pk)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: JobSerializer, **_errors(401, 404)},
        tags=["compute"],
        summary="One job: status, live progress (epoch, steps, epsilon so far), budget and receipt",
    )
    def get(self, request, job_id: int):
        return Response(JobSerializer(job_services.job_get_visible(job_id=job_id, user=request.user)).data)


class JobCancelView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={202: JobSerializer, **_errors(401, 403, 404, 409)},
        tags=["compute"],
        summary="Cancel my queued or running job",
        description="A paid or queued job ends at once: its epsilon goes back to the budget and the payment is "
        "refunded. A provisioning or running job is stopped within a second: if the runner had not read the data "
        "yet, you get everything back the same way; once it has, nothing is released to you (the sandbox is "
        "stopped and its outputs discarded), so the epsilon goes back to the budget, and the payment goes to the "
        "provider for the compute with a receipt recording epsilon 0 spent. Only the job's buyer can cancel it "
        "here; moderators use `moderator-cancel/` with a reason.",
    )
    def post(self, request, job_id: int):
        job = job_services.job_get_visible(job_id=job_id, user=request.user)
        job = job_services.job_cancel(job=job, user=request.user)
        job.refresh_from_db()
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobModeratorCancelView(APIView):
    permission_classes = [IsAuthenticated]

    class Input(serializers.Serializer):
        reason = serializers.CharField(
            max_length=job_services.MODERATOR_REASON_MAX,
            help_text="Why the job is stopped, in words the buyer reads (shown as 'Cancelled by a moderator: ...').",
        )

    @extend_schema(
        request=Input,
        responses={202: JobSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["compute"],
        summary="Moderators: cancel any buyer's queued or running job, with a reason",
        description="Staff only. The buyer is never charged for it: the payment is refunded on chain and the "
        "epsilon goes back to the budget, whatever the job had read. The reason is logged in the job's log "
        "and shown to the buyer. A running job is stopped by its worker within a second.",
        examples=[OpenApiExample("Reason", value={"reason": "The dataset is being withdrawn for a licence review."})],
    )
    def post(self, request, job_id: int):
        if not request.user.is_staff:
            raise NotFound("No such job.")
        job = job_services.job_get_visible(job_id=job_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"]
        job = job_services.job_cancel_by_moderator(job=job, moderator=request.user, reason=reason)
        job.refresh_from_db()
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobResultView(APIView):
    permission_classes = [IsAuthenticated]

    class ResultOutput(serializers.Serializer):
        job = serializers.IntegerField()
        epsilon_spent = serializers.CharField()
        results = serializers.DictField(help_text="Accounting, metrics (each marked dp or public) and curves.")
        artifacts = ArtifactSerializer(many=True)

    @extend_schema(
        responses={200: ResultOutput, **_errors(401, 403, 404, 409)},
        tags=["compute"],
        summary="The released results of my finished job: artifacts with download links, metrics and curves",
    )
    def get(self, request, job_id: int):
        job = job_services.job_get_visible(job_id=job_id, user=request.user)
        job_services.job_require_buyer(job=job, user=request.user)
        if job.status != ComputeJob.Status.FINISHED:
            return Response(
                {"code": "no_results", "detail": f"This job is {job.status}; results come when it finishes."},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(
            {
                "job": job.pk,
                "epsilon_spent": str(job.epsilon_spent),
                "results": job.results,
                "artifacts": ArtifactSerializer(job.artifacts.all(), many=True).data,
            }
        )


class JobArtifactView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The artifact (weights, ONNX model)"
            ),
            # FileResponse names the type from the file name: the model card and statistics are JSON.
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="A JSON artifact (model card, DP statistics)"
            ),
            **_errors(401, 403, 404, 409),
        },
        tags=["compute"],
        operation_id="v1_jobs_result_artifact_retrieve",
        summary="Download one artifact of my finished job",
    )
    def get(self, request, job_id: int, name: str):
        job = job_services.job_get_visible(job_id=job_id, user=request.user)
        artifact, fh = result_services.artifact_open(job=job, user=request.user, name=name)
        response = FileResponse(fh, as_attachment=True, filename=f"job-{job.pk}-{artifact.name}")
        response["X-Content-SHA256"] = artifact.sha256
        return response


class JobLogsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: LogEntrySerializer(many=True), **_errors(401, 404)},
        tags=["compute"],
        summary="A job's log: the platform's steps and the runner's messages (never rows of the data)",
    )
    def get(self, request, job_id: int):
        job = job_services.job_get_visible(job_id=job_id, user=request.user)
        return Response(LogEntrySerializer(job.log_entries.all()[:1000], many=True).data)


class JobReceiptView(APIView):
    permission_classes = [IsAuthenticated]

    class ReceiptOutput(serializers.Serializer):
        job = serializers.IntegerField()
        receipt = serializers.DictField(allow_null=True)
        verified = serializers.BooleanField(allow_null=True, help_text="All checks pass (null: not on chain yet).")
        checks = CheckSerializer(many=True)

    @extend_schema(
        responses={200: ReceiptOutput, **_errors(401, 404, 503)},
        tags=["compute"],
        summary="A job's receipt, verified: hashes recomputed from what we hold and compared with the chain",
    )
    def get(self, request, job_id: int):
        job = job_services.job_get_visible(job_id=job_id, user=request.user)
        checks = result_services.receipt_verify(job=job)
        oks = [c.ok for c in checks]
        verified = None if None in oks else all(oks)
        return Response(
            {
                "job": job.pk,
                "receipt": JobSerializer(job).data["receipt"],
                "verified": verified,
                "checks": [c.as_dict() for c in checks],
            }
        )


RECEIPTS_LISTED = 200


class DatasetReceiptsView(APIView):
    """The dataset page's "Receipts of past jobs": public, like the ReceiptRecorded events."""

    permission_classes = [AllowAny]

    class ReceiptRow(serializers.Serializer):
        recorded_at = serializers.DateTimeField(allow_null=True)
        algorithm = serializers.CharField()
        epsilon_spent = serializers.CharField()
        dataset_hash = serializers.CharField()
        algorithm_hash = serializers.CharField(help_text="The parameters hash the order committed to.")
        result_hash = serializers.CharField()
        tx_hash = serializers.CharField()
        block_number = serializers.IntegerField(allow_null=True)
        chain_order_id = serializers.IntegerField(allow_null=True)
        job = serializers.IntegerField(
            allow_null=True, help_text="The job's id when it is yours (or your dataset's); otherwise null."
        )

    @extend_schema(
        responses={200: ReceiptRow(many=True), **_errors(404)},
        tags=["compute"],
        summary="Receipts recorded on chain for jobs on a dataset, newest first (public; buyers are not named)",
        description="At most the 200 newest. `job` is the job's id for its buyer, the dataset's provider and "
        "moderators; null for everyone else.",
    )
    def get(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        jobs = list(receipts_on_dataset(dataset=dataset)[:RECEIPTS_LISTED])
        named = job_ids_named_for(dataset=dataset, user=request.user, job_ids=[j.pk for j in jobs])
        rows = []
        for job in jobs:
            order = job.order
            if order is None:  # receipts_on_dataset keeps only jobs whose order is receipted
                raise RuntimeError(f"Job {job.pk} is listed with the receipts but has no order.")
            receipt = order.receipt or {}
            spent = order.epsilon_spent if order.epsilon_spent is not None else job.epsilon_spent
            rows.append(
                {
                    "recorded_at": order.settled_at,
                    "algorithm": job.algorithm,
                    "epsilon_spent": str(spent),
                    **{k: receipt.get(k, "") for k in ("dataset_hash", "algorithm_hash", "result_hash", "tx_hash")},
                    "block_number": receipt.get("block_number"),
                    "chain_order_id": order.chain_order_id,
                    "job": job.pk if job.pk in named else None,
                }
            )
        return Response(self.ReceiptRow(rows, many=True).data)


class DatasetLedgerView(APIView):
    """The dataset's privacy ledger: every release, running totals against the caps, checked
    against the chain. Public; buyers are never named."""

    permission_classes = [AllowAny]

    class EntryRow(serializers.Serializer):
        job = serializers.IntegerField(
            allow_null=True, help_text="The job's id for its buyer, the provider and moderators; otherwise null."
        )
        algorithm = serializers.CharField()
        epsilon = serializers.CharField(help_text="Epsilon charged (what the job reserved).")
        delta = serializers.FloatField()
        accountant = serializers.CharField()
        time = serializers.DateTimeField(allow_null=True, help_text="When it ended, to the hour.")
        status = serializers.CharField()
        epsilon_total_after = serializers.CharField(help_text="Running total of epsilon after this release.")
        delta_total_after = serializers.FloatField(help_text="Running total of delta after this release.")
        receipt_tx = serializers.CharField(allow_null=True)
        block_number = serializers.IntegerField(allow_null=True)
        chain_matches = serializers.BooleanField(
            allow_null=True, help_text="The chain's receipt books the same epsilon and dataset (null: not yet)."
        )

    class LedgerOutput(serializers.Serializer):
        dataset = serializers.IntegerField()
        epsilon_cap = serializers.CharField()
        epsilon_per_job = serializers.CharField()
        delta_cap = serializers.FloatField()
        delta_per_job = serializers.FloatField()
        epsilon_spent = serializers.CharField()
        delta_spent = serializers.FloatField()
        epsilon_reserved = serializers.CharField(help_text="Held by jobs that have not ended yet.")
        delta_reserved = serializers.FloatField()
        epsilon_on_chain = serializers.CharField(
            allow_null=True, help_text="Cumulative epsilon the datatoken has booked on chain (ordered)."
        )
        chain_ok = serializers.BooleanField(allow_null=True, help_text="Every entry matches the chain.")
        entries = serializers.ListField(child=serializers.DictField(), help_text="Oldest first; see EntryRow.")

    @extend_schema(
        responses={200: LedgerOutput, **_errors(404)},
        tags=["compute"],
        summary="A dataset's privacy ledger: every release with running epsilon and delta totals against the caps",
    )
    def get(self, request, dataset_id: int):
        from compute_to_data.selectors_ledger import ledger_for

        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        ledger = ledger_for(dataset=dataset)
        named = job_ids_named_for(dataset=dataset, user=request.user, job_ids=[e.job_id for e in ledger.entries])
        entries = [
            self.EntryRow(
                {
                    "job": e.job_id if e.job_id in named else None,
                    "algorithm": e.algorithm,
                    "epsilon": str(e.epsilon),
                    "delta": e.delta,
                    "accountant": e.accountant,
                    "time": e.time,
                    "status": e.status,
                    "epsilon_total_after": str(e.epsilon_total_after),
                    "delta_total_after": float(e.delta_total_after),
                    "receipt_tx": e.receipt_tx,
                    "block_number": e.block_number,
                    "chain_matches": e.chain_matches,
                }
            ).data
            for e in ledger.entries
        ]
        return Response(
            {
                "dataset": dataset.pk,
                "epsilon_cap": str(ledger.epsilon_cap),
                "epsilon_per_job": str(ledger.epsilon_per_job),
                "delta_cap": float(ledger.delta_cap),
                "delta_per_job": ledger.delta_per_job,
                "epsilon_spent": str(ledger.epsilon_spent),
                "delta_spent": float(ledger.delta_spent),
                "epsilon_reserved": str(ledger.epsilon_reserved),
                "delta_reserved": float(ledger.delta_reserved),
                "epsilon_on_chain": None if ledger.epsilon_on_chain is None else str(ledger.epsilon_on_chain),
                "chain_ok": ledger.chain_ok,
                "entries": entries,
            }
        )


class JobPreviewView(APIView):
    """A free preview run of a job on synthetic mock data with the same DP settings."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]
    throttle_classes = [UserRateThrottle, ScopedRateThrottle]
    throttle_scope = "preview"

    class PreviewOutput(serializers.Serializer):
        rows = serializers.IntegerField(help_text="Synthetic mock rows the preview ran on.")
        public_rows = serializers.IntegerField(help_text="The dataset's public (approximate) row count.")
        epsilon = serializers.FloatField(allow_null=True)
        noise_multiplier = serializers.FloatField(allow_null=True)
        steps = serializers.IntegerField(allow_null=True)
        metrics = serializers.ListField(child=serializers.DictField())
        statistics = serializers.DictField(allow_null=True)
        note = serializers.CharField()

    @extend_schema(
        request=JobInput,
        responses={200: PreviewOutput, **_errors(400, 401, 404, 409, 503)},
        tags=["compute"],
        summary="Free preview: the job's algorithm on synthetic mock data with the same DP settings (no budget)",
        examples=[OpenApiExample("Logistic regression", value=EXAMPLE_JOB, request_only=True)],
    )
    def post(self, request):
        from compute_to_data.services.preview import job_preview_run

        data = JobInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = catalog.dataset_get_visible(dataset_id=v["dataset"], user=request.user)
        return Response(job_preview_run(dataset=dataset, algorithm=v["algorithm"], parameters=v["parameters"]))
