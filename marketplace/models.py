"""Marketplace rows. State changes of ``Dataset`` go through ``marketplace.services``; the
status pipeline is data (``Dataset.TRANSITIONS``)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models


class User(AbstractUser):
    """A person on the marketplace. Anyone can provide and buy; staff moderate."""

    email = models.EmailField("e-mail address", blank=True)
    organisation = models.CharField(max_length=200, blank=True)
    bio = models.TextField(blank=True, max_length=2000)
    # When the current ``email`` was confirmed by following the link sent to it; cleared when the
    # address changes. An unconfirmed account cannot submit a dataset for review.
    email_verified_at = models.DateTimeField(null=True, blank=True)

    @property
    def is_moderator(self) -> bool:
        return self.is_staff

    @property
    def email_verified(self) -> bool:
        return bool(self.email and self.email_verified_at)


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Licence(models.TextChoices):
    CC_BY_4 = "CC-BY-4.0", "Creative Commons Attribution 4.0"
    CC_BY_SA_4 = "CC-BY-SA-4.0", "Creative Commons Attribution-ShareAlike 4.0"
    CC_BY_NC_4 = "CC-BY-NC-4.0", "Creative Commons Attribution-NonCommercial 4.0"
    CC0 = "CC0-1.0", "CC0 1.0 (public domain dedication)"
    ODBL = "ODbL-1.0", "Open Database License 1.0"
    PROPRIETARY = "proprietary", "Proprietary: compute-to-data results only"


class Dataset(models.Model):
    """A provider's dataset and its listing. The private file is stored encrypted and is never
    served; only the declared schema, the metadata and mock data are public."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING_REVIEW = "pending_review", "Pending review"
        LISTED = "listed", "Listed"
        REJECTED = "rejected", "Rejected"
        DELISTED = "delisted", "Delisted"

    # action -> (allowed from-states, to-state). The only door is services.moderation.
    TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
        "submit": (frozenset({Status.DRAFT, Status.REJECTED}), Status.PENDING_REVIEW),
        "approve": (frozenset({Status.PENDING_REVIEW}), Status.LISTED),
        "reject": (frozenset({Status.PENDING_REVIEW}), Status.REJECTED),
        "delist": (frozenset({Status.LISTED}), Status.DELISTED),
        "relist": (frozenset({Status.DELISTED}), Status.LISTED),
    }

    class FileFormat(models.TextChoices):
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"

    class Validation(models.TextChoices):
        PENDING = "pending", "Checking the whole file"
        VALID = "valid", "Valid"
        INVALID = "invalid", "Invalid"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=20_000, help_text="Markdown.")
    # The description rendered and sanitised once, when it is saved (common.markdown): pages
    # show this and never render Markdown per request, so a costly description costs once.
    description_html = models.TextField(blank=True, default="", editable=False)
    tags = models.ManyToManyField(Tag, blank=True, related_name="datasets")
    licence = models.CharField(max_length=20, choices=Licence.choices, default=Licence.CC_BY_4)
    # Price of one compute job; settled on chain by a later issue.
    price = models.DecimalField(
        max_digits=18, decimal_places=6, default=Decimal("0"), validators=[MinValueValidator(Decimal("0"))]
    )
    price_token = models.CharField(max_length=12, default="USDC")
    # Privacy budget caps; reserved and charged by compute_to_data, mirrored on chain later.
    epsilon_total = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("10"))
    epsilon_per_job = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1"))
    delta = models.FloatField(default=1e-5)
    # Delta composes across jobs too: the cap on the sum of every job's delta (>= delta per job).
    delta_total = models.FloatField(default=1e-4)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True)
    listed_at = models.DateTimeField(null=True, blank=True)

    # The private file: encrypted at rest, never served. storage_name is a key in the
    # "datasets" storage. file_size, file_sha256 and row_count are private to the owner (and
    # staff): a plain hash or exact size would let anyone holding a candidate file confirm it.
    file_format = models.CharField(max_length=10, choices=FileFormat.choices)
    original_filename = models.CharField(max_length=255)
    storage_name = models.CharField(max_length=255, unique=True)
    file_size = models.BigIntegerField()
    file_sha256 = models.CharField(max_length=64)
    validation = models.CharField(max_length=10, choices=Validation.choices, default=Validation.PENDING)
    validation_detail = models.TextField(blank=True)
    validation_progress = models.PositiveSmallIntegerField(default=0)
    row_count = models.BigIntegerField(null=True, blank=True)
    # Owner only: cells that do not fit the schema, per column, from the last full-file check
    # (marketplace.services.datasets.dataset_validate; rendered by selectors.schema_report).
    schema_report = models.JSONField(default=dict, blank=True)

    # Public: a hiding commitment to the file, "0x" + SHA-256(salt || file bytes), with a 256-bit
    # salt kept sealed under the platform key and shown to the owner only (so they can re-derive
    # it). Receipts and the on-chain listing bind to it. The size is public only as a bucket.
    commitment = models.CharField(max_length=66, blank=True, db_index=True)
    commitment_salt_sealed = models.BinaryField(editable=False, default=b"")
    size_bucket = models.CharField(max_length=20, blank=True)
    # Public, declared by the owner at schema confirmation: the runner derives batch sampling and
    # steps from it, never from the private row count.
    public_row_count = models.PositiveBigIntegerField(null=True, blank=True)
    # The runner's holdout split: the owner's fraction (public), keyed by a sealed secret that no
    # one is shown, so no buyer can choose the rows.
    holdout_fraction = models.FloatField(default=0.2)
    holdout_key_sealed = models.BinaryField(editable=False, default=b"")

    # Schema: proposed by the platform from a bounded sample (owner only), declared by the owner (public).
    proposed_schema = models.JSONField(default=dict, blank=True)
    declared_schema = models.JSONField(null=True, blank=True)
    schema_confirmed_at = models.DateTimeField(null=True, blank=True)

    # An owner's edit of a listed dataset's public text (title, description and its HTML, tags,
    # licence) waits here for a moderator; the listing keeps showing the approved text until then
    # (services.datasets.dataset_update, services.moderation.dataset_edit_decide).
    pending_edit = models.JSONField(null=True, blank=True, editable=False)
    pending_edit_at = models.DateTimeField(null=True, blank=True, db_index=True)

    # Optional mock file uploaded by the provider (public); otherwise mock data is synthesised.
    mock_storage_name = models.CharField(max_length=255, blank=True)
    mock_filename = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Catalogue orderings: each sort is an index walk with its tie-breakers included.
            models.Index(fields=["status", "-created_at", "-id"], name="dataset_status_newest"),
            models.Index(fields=["status", "price", "-created_at", "-id"], name="dataset_status_price_newest"),
            models.Index(fields=["status", "-price", "-created_at", "-id"], name="dataset_status_dearest_newest"),
            models.Index(fields=["status", "licence"], name="dataset_status_licence"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="dataset_price_non_negative"),
            models.CheckConstraint(
                condition=models.Q(epsilon_per_job__lte=models.F("epsilon_total")),
                name="dataset_epsilon_per_job_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (#{self.pk})"

    @property
    def is_public(self) -> bool:
        return self.status == self.Status.LISTED


class Report(models.Model):
    """A user's report about a listing; staff resolve it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports")
    reason = models.TextField(max_length=2000)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    resolution = models.TextField(blank=True, max_length=2000)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Report #{self.pk} on {self.dataset_id} ({self.status})"


class ModerationLogEntry(models.Model):
    """Append-only audit log: who did what to which listing, when and why."""

    class Action(models.TextChoices):
        SUBMIT = "submit", "Submitted for review"
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        DELIST = "delist", "Delisted"
        RELIST = "relist", "Relisted"
        SUBMIT_EDIT = "submit_edit", "Edit submitted for review"
        APPROVE_EDIT = "approve_edit", "Edit approved"
        REJECT_EDIT = "reject_edit", "Edit rejected"
        REPORT = "report", "Reported"
        RESOLVE_REPORT = "resolve_report", "Report resolved"
        DISMISS_REPORT = "dismiss_report", "Report dismissed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="moderation_log")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "moderation log entries"

    def __str__(self) -> str:
        return f"{self.action} on {self.dataset_id} by {self.actor_id}"


class Notification(models.Model):
    """An e-mail the marketplace sent, at most once per ``key`` (``moderation-entry:12``,
    ``job:7:finished:buyer``): a task delivered twice finds its key sent and sends nothing."""

    key = models.CharField(max_length=200, unique=True)
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.key} ({'sent' if self.sent_at else 'not sent'})"
