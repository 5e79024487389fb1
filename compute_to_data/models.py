"""Compute-to-data rows. ``ComputeJob`` and ``PrivacyBudget`` change only through
``compute_to_data.services``; the job's status pipeline is data (``ComputeJob.TRANSITIONS``)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models


class PrivacyBudget(models.Model):
    """A dataset's privacy budget as the marketplace books it. The caps live on the dataset
    (``epsilon_total``, ``epsilon_per_job``, ``delta``) and on chain; this row is what jobs lock
    (SELECT ... FOR UPDATE) to reserve, charge and release epsilon."""

    dataset = models.OneToOneField(
        "marketplace.Dataset", on_delete=models.CASCADE, primary_key=True, related_name="budget"
    )
    epsilon_reserved = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    epsilon_spent = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    # Delta composes across jobs too; booked exactly (decimal), against the dataset's delta_total.
    delta_reserved = models.DecimalField(max_digits=30, decimal_places=24, default=Decimal("0"))
    delta_spent = models.DecimalField(max_digits=30, decimal_places=24, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(epsilon_reserved__gte=0), name="budget_reserved_non_negative"),
            models.CheckConstraint(condition=models.Q(epsilon_spent__gte=0), name="budget_spent_non_negative"),
            models.CheckConstraint(
                condition=models.Q(delta_reserved__gte=0), name="budget_delta_reserved_non_negative"
            ),
            models.CheckConstraint(condition=models.Q(delta_spent__gte=0), name="budget_delta_spent_non_negative"),
        ]

    def __str__(self) -> str:
        return f"budget of dataset {self.dataset_id}"


class ComputeJob(models.Model):
    """A buyer's compute job: one algorithm with its parameters, run on one dataset in a sandbox,
    paid by one on-chain order."""

    class Status(models.TextChoices):
        CREATED = "created", "Waiting for payment"
        PAID = "paid", "Paid"
        QUEUED = "queued", "Queued"
        PROVISIONING = "provisioning", "Preparing the sandbox"
        RUNNING = "running", "Running"
        PUBLISHING = "publishing", "Publishing results"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected"

    ACTIVE = frozenset({Status.PROVISIONING, Status.RUNNING, Status.PUBLISHING})
    TERMINAL = frozenset({Status.FINISHED, Status.FAILED, Status.CANCELLED, Status.REJECTED})
    CANCELLABLE = frozenset({Status.PAID, Status.QUEUED, Status.PROVISIONING, Status.RUNNING})

    # from-status -> allowed to-statuses. The only door is services.jobs.job_transition.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.CREATED: frozenset({Status.PAID, Status.REJECTED}),
        Status.PAID: frozenset({Status.QUEUED, Status.REJECTED, Status.CANCELLED}),
        Status.QUEUED: frozenset({Status.PROVISIONING, Status.CANCELLED, Status.FAILED}),
        # -> queued from a worker's phase: its worker died (or lost the database) before anything was
        # released, so the job runs again from the start (services.execution._job_restart).
        Status.PROVISIONING: frozenset({Status.RUNNING, Status.QUEUED, Status.FAILED, Status.CANCELLED}),
        Status.RUNNING: frozenset({Status.PUBLISHING, Status.QUEUED, Status.FAILED, Status.CANCELLED}),
        Status.PUBLISHING: frozenset({Status.FINISHED, Status.QUEUED, Status.FAILED}),
    }

    class Budget(models.TextChoices):
        NONE = "none", "Not reserved"
        RESERVED = "reserved", "Reserved"
        CHARGED = "charged", "Charged"
        RELEASED = "released", "Released"

    class Settlement(models.TextChoices):
        NONE = "none", "Nothing to settle yet"
        RECEIPT = "receipt", "Receipt recorded on chain"
        REFUND = "refund", "Refunded on chain"
        # Past its deadline unsettled, the buyer reclaimed the payment (the epsilon released).
        RECLAIM = "reclaim", "Reclaimed by the buyer after its deadline"
        # The chain no longer holds the order (rolled back): nothing to settle, nothing was charged.
        VANISHED = "vanished", "Payment gone from the chain (rolled back): nothing charged"

    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="compute_jobs")
    dataset = models.ForeignKey("marketplace.Dataset", on_delete=models.PROTECT, related_name="compute_jobs")
    order = models.OneToOneField(
        "chain.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="job", help_text="The payment."
    )
    algorithm = models.CharField(max_length=40)
    parameters = models.JSONField(help_text="Normalised parameters; the order commits to their hash.")
    params_hash = models.CharField(max_length=66)
    evaluation_csv = models.TextField(
        blank=True, help_text="The buyer's own evaluation rows (CSV, public to them): exact metrics, labelled public."
    )
    epsilon = models.DecimalField(max_digits=10, decimal_places=4)
    delta = models.FloatField()

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CREATED, db_index=True)
    reason = models.TextField(blank=True, help_text="Why the job failed, was rejected or cancelled.")
    limit_hit = models.CharField(max_length=20, blank=True)
    failure = models.CharField(
        max_length=30, blank=True, help_text="Why it ended without results: a code of compute_to_data.failures."
    )
    progress = models.JSONField(default=dict, blank=True)

    budget_state = models.CharField(max_length=10, choices=Budget.choices, default=Budget.NONE)
    epsilon_spent = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    settlement = models.CharField(max_length=10, choices=Settlement.choices, default=Settlement.NONE)

    # Worker bookkeeping: who runs it, when it last showed life, where its private folder is.
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    workspace = models.CharField(max_length=500, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # A moderator's cancellation: who, and their words (shown to the buyer, escaped like any text).
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    moderator_reason = models.TextField(blank=True)
    data_touched_at = models.DateTimeField(null=True, blank=True)

    # The receipt: what ran on what, and what came out.
    dataset_hash = models.CharField(max_length=66, blank=True)
    runner_hash = models.CharField(max_length=66, blank=True)
    result_hash = models.CharField(max_length=66, blank=True)
    results = models.JSONField(
        default=dict, blank=True, help_text="The runner's manifest: metrics, curves, accounting."
    )
    runner_seconds = models.FloatField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat")]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.algorithm}, {self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def percent(self) -> int:
        if self.status == self.Status.FINISHED:
            return 100
        return int(self.progress.get("percent", 0)) if self.progress else 0


class JobArtifact(models.Model):
    """One released output of a finished job, stored in the "results" storage. Only the buyer
    downloads it; its SHA-256 is part of the receipt."""

    job = models.ForeignKey(ComputeJob, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    description = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=255)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="artifact_name_once_per_job")]

    def __str__(self) -> str:
        return f"{self.name} of job {self.job_id}"


class JobLogEntry(models.Model):
    """What the runner and the orchestration said about a job. The runner never logs rows."""

    class Source(models.TextChoices):
        RUNNER = "runner", "Runner"
        PLATFORM = "platform", "Platform"

    job = models.ForeignKey(ComputeJob, on_delete=models.CASCADE, related_name="log_entries")
    source = models.CharField(max_length=10, choices=Source.choices)
    message = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "job log entries"

    def __str__(self) -> str:
        return f"{self.source}: {self.message[:40]}"
