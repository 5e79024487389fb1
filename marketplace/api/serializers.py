"""Output serializers shared by API views (input serializers live beside each view)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.markdown import markdown_render
from marketplace.models import Dataset, ModerationLogEntry, Report

SCHEMA_EXAMPLE = {
    "columns": [
        {"name": "age", "type": "integer", "min": 0, "max": 120, "nullable": False, "description": ""},
        {"name": "smoker", "type": "boolean", "nullable": False, "description": ""},
        {
            "name": "region",
            "type": "categorical",
            "categories": ["north", "south"],
            "nullable": False,
            "description": "",
        },
    ]
}


class DatasetSerializer(serializers.ModelSerializer):
    """Public view of a dataset. Owner-only fields are added by the view for the owner."""

    owner = serializers.CharField(source="owner.username")
    tags = serializers.SerializerMethodField()
    description_html = serializers.SerializerMethodField()
    price = serializers.DecimalField(max_digits=18, decimal_places=6)
    epsilon_total = serializers.DecimalField(max_digits=10, decimal_places=4)
    epsilon_per_job = serializers.DecimalField(max_digits=10, decimal_places=4)
    schema_confirmed = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = (
            "id",
            "title",
            "description",
            "description_html",
            "tags",
            "licence",
            "price",
            "price_token",
            "epsilon_total",
            "epsilon_per_job",
            "delta",
            "status",
            "owner",
            "file_format",
            "file_size",
            "file_sha256",
            "declared_schema",
            "schema_confirmed",
            "has_uploaded_mock",
            "created_at",
            "listed_at",
            "updated_at",
        )

    has_uploaded_mock = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, obj: Dataset) -> list[str]:
        return sorted(t.name for t in obj.tags.all())

    def get_description_html(self, obj: Dataset) -> str:
        return markdown_render(obj.description)

    def get_schema_confirmed(self, obj: Dataset) -> bool:
        return obj.declared_schema is not None

    def get_has_uploaded_mock(self, obj: Dataset) -> bool:
        return bool(obj.mock_storage_name)


class DatasetListSerializer(DatasetSerializer):
    """Catalogue rows: no rendered HTML and no schema, to keep search pages fast; the detail
    endpoint has everything."""

    class Meta(DatasetSerializer.Meta):
        fields = tuple(f for f in DatasetSerializer.Meta.fields if f not in ("description_html", "declared_schema"))


class OwnerDatasetSerializer(DatasetSerializer):
    """What the owner (and staff) also see: the proposal, validation and private row count."""

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + (
            "original_filename",
            "validation",
            "validation_detail",
            "validation_progress",
            "row_count",
            "proposed_schema",
        )


def dataset_data(dataset: Dataset, user) -> dict:
    private = user is not None and user.is_authenticated and (user.is_staff or dataset.owner_id == user.pk)
    return (OwnerDatasetSerializer if private else DatasetSerializer)(dataset).data


class ModerationLogEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    def get_actor(self, obj: ModerationLogEntry) -> str:
        # Providers see that someone reported their listing, not who.
        request = self.context.get("request")
        if obj.action == ModerationLogEntry.Action.REPORT and not (request and request.user.is_staff):
            return "A user"
        return obj.actor.username

    dataset_title = serializers.CharField(source="dataset.title")

    class Meta:
        model = ModerationLogEntry
        fields = (
            "id",
            "dataset",
            "dataset_title",
            "actor",
            "action",
            "from_status",
            "to_status",
            "reason",
            "created_at",
        )


class ReportSerializer(serializers.ModelSerializer):
    reporter = serializers.CharField(source="reporter.username")
    resolved_by = serializers.CharField(source="resolved_by.username", allow_null=True, default=None)

    class Meta:
        model = Report
        fields = (
            "id",
            "dataset",
            "reporter",
            "reason",
            "status",
            "resolution",
            "resolved_by",
            "created_at",
            "resolved_at",
        )


class QueueItemSerializer(DatasetSerializer):
    open_reports = serializers.IntegerField()

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ("open_reports", "validation")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable error code.")
    detail = serializers.CharField(help_text="Human-readable explanation.")
