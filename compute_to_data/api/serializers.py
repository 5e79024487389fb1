"""Output serializers of the compute API."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from compute_to_data.failures import FAILURES
from compute_to_data.models import ComputeJob, JobArtifact, JobLogEntry
from compute_to_data.services.jobs import time_bucket


class ProgressSerializer(serializers.Serializer):
    phase = serializers.CharField(required=False)
    percent = serializers.IntegerField(required=False)
    epoch = serializers.IntegerField(required=False)
    epochs = serializers.IntegerField(required=False)
    step = serializers.IntegerField(required=False)
    steps = serializers.IntegerField(required=False)
    epsilon = serializers.FloatField(required=False, help_text="Epsilon spent so far, by the runner's accountant.")


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    order_status = serializers.CharField(source="order.status", default=None, read_only=True, allow_null=True)
    chain_order_id = serializers.IntegerField(
        source="order.chain_order_id", default=None, read_only=True, allow_null=True
    )
    cancelling = serializers.SerializerMethodField()
    receipt = serializers.SerializerMethodField()
    failure_caused_by = serializers.SerializerMethodField(
        help_text="Who caused the failure: buyer, limit, provider, platform or moderator (null when it did not "
        "fail). Platform failures that do not depend on the data are refunded; see the failure's rule in the docs."
    )

    class Meta:
        model = ComputeJob
        fields = (
            "id",
            "dataset",
            "buyer",
            "order",
            "order_status",
            "chain_order_id",
            "algorithm",
            "parameters",
            "params_hash",
            "epsilon",
            "delta",
            "status",
            "reason",
            "limit_hit",
            "failure",
            "failure_caused_by",
            "progress",
            "cancelling",
            "budget_state",
            "epsilon_spent",
            "settlement",
            "attempts",
            "runner_seconds",
            "receipt",
            "created_at",
            "paid_at",
            "queued_at",
            "started_at",
            "finished_at",
        )

    def get_failure_caused_by(self, job: ComputeJob) -> str | None:
        failure = FAILURES.get(job.failure)
        return failure.caused_by if failure else None

    def get_progress(self, job: ComputeJob) -> dict:
        return {**(job.progress or {}), "percent": job.percent}

    def get_cancelling(self, job: ComputeJob) -> bool:
        return job.cancel_requested_at is not None and not job.is_terminal

    def get_receipt(self, job: ComputeJob) -> dict | None:
        if not job.result_hash:
            return None
        order = job.order
        return {
            "dataset_hash": job.dataset_hash,
            "runner_hash": job.runner_hash,
            "params_hash": job.params_hash,
            "result_hash": job.result_hash,
            "epsilon_spent": str(job.epsilon_spent) if job.epsilon_spent is not None else None,
            "tx_hash": (order.receipt or {}).get("tx_hash") if order else None,
            "block_number": (order.receipt or {}).get("block_number") if order else None,
            "recorded": bool(order and order.status == "receipted"),
        }


class ArtifactSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = JobArtifact
        fields = ("name", "kind", "description", "size", "sha256", "download_url")

    def get_download_url(self, artifact: JobArtifact) -> str:
        return reverse("compute-api:job-artifact", args=[artifact.job_id, artifact.name])


class LogEntrySerializer(serializers.ModelSerializer):
    created_at = serializers.SerializerMethodField(help_text="To the minute (coarse, like every released time).")

    class Meta:
        model = JobLogEntry
        fields = ("created_at", "source", "message")

    def get_created_at(self, entry: JobLogEntry) -> str:
        return time_bucket(entry.created_at).isoformat().replace("+00:00", "Z")


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField(allow_null=True)
    detail = serializers.CharField()
