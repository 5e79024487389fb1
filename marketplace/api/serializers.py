"""Output serializers shared by API views (input serializers live beside each view)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.crypto import DecryptionError
from marketplace.models import Dataset, ModerationLogEntry, Report
from marketplace.services.datasets import COMMITMENT_FORMULA, dataset_commitment_salt

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
    """Public view of a dataset. Owner-only fields are added by the view for the owner.

    Nothing here may let a holder of a candidate file confirm it is this dataset: the file is
    named only by its hiding ``commitment`` and a coarse ``size_bucket``; the exact size, the
    plain SHA-256 and the private row count are owner-only (``OwnerDatasetSerializer``)."""

    owner = serializers.CharField(source="owner.username")
    tags = serializers.SerializerMethodField()
    description_html = serializers.SerializerMethodField()
    price = serializers.DecimalField(max_digits=18, decimal_places=6)
    epsilon_total = serializers.DecimalField(max_digits=10, decimal_places=4)
    epsilon_per_job = serializers.DecimalField(max_digits=10, decimal_places=4)
    schema_confirmed = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields: tuple[str, ...] = (
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
            "delta_total",
            "status",
            "owner",
            "file_format",
            "commitment",
            "size_bucket",
            "public_row_count",
            "holdout_fraction",
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
        # Rendered and sanitised when the description was saved; never rendered per request.
        return obj.description_html

    def get_schema_confirmed(self, obj: Dataset) -> bool:
        return obj.declared_schema is not None

    def get_has_uploaded_mock(self, obj: Dataset) -> bool:
        return bool(obj.mock_storage_name)


# One field of DatasetListSerializer's output: (name, attribute path, to_representation, the plain
# row's key), or for a SerializerMethodField (name, (), the method's name, the row's key).
_PlanStep = tuple[str, tuple[str, ...], Callable[[Any], Any] | str, str]


class DatasetListSerializer(DatasetSerializer):
    """Catalogue rows: no rendered HTML and no schema, to keep search pages fast; the detail
    endpoint has everything.

    Output only, and the same output as DRF's own loop with the same fields' ``to_representation``,
    for a ``Dataset`` or for a plain row from ``marketplace.selectors.catalog.listing_rows`` (what
    the API's paginator hands over for the catalogue). The fields are built once per process
    rather than once per request (``ModelSerializer.get_fields`` maps every model field anew), and
    attributes are read directly: every source here is a plain attribute path that always exists
    on a ``Dataset`` (no callables, no dicts), which is what DRF's ``get_attribute`` reduces to."""

    # Where a plain row keeps what a Dataset's attribute path or method gives.
    ROW_KEYS: ClassVar[dict[str, str]] = {"owner": "owner_username", "tags": "tag_names"}
    # Built once per class (read from the class's own __dict__, so a subclass builds its own).
    _plan: ClassVar[list[_PlanStep]]

    class Meta(DatasetSerializer.Meta):
        fields = tuple(f for f in DatasetSerializer.Meta.fields if f not in ("description_html", "declared_schema"))

    @classmethod
    def _representation_plan(cls) -> list[_PlanStep]:
        """(field name, attribute path or () for a method field, its to_representation or method
        name, the plain row's key), built once per class."""
        plan: list[_PlanStep] | None = cls.__dict__.get("_plan")
        if plan is None:
            plan = []
            for field in cls()._readable_fields:
                name = field.field_name
                assert name is not None  # the serializer's fields are bound to their names
                if isinstance(field, serializers.SerializerMethodField):
                    plan.append((name, (), field.method_name, cls.ROW_KEYS.get(name, name)))
                else:
                    plan.append(
                        (name, tuple(field.source_attrs), field.to_representation, cls.ROW_KEYS.get(name, name))
                    )
            cls._plan = plan
        return plan

    def to_representation(self, instance: Dataset | dict[str, Any]) -> dict[str, Any]:
        ret: dict[str, Any] = {}
        if isinstance(instance, dict):
            for name, _, represent, key in self._representation_plan():
                value = instance[key]
                if isinstance(represent, str):  # a method field: the row holds its value
                    ret[name] = sorted(value) if name == "tags" else value
                else:
                    ret[name] = None if value is None else represent(value)
            return ret
        for name, attrs, represent, _ in self._representation_plan():
            if isinstance(represent, str):  # a SerializerMethodField: represent is the method's name
                ret[name] = getattr(self, represent)(instance)
                continue
            value = instance
            for attr in attrs:
                value = getattr(value, attr)
            ret[name] = None if value is None else represent(value)
        return ret


class PendingEditSerializer(serializers.Serializer):
    """The owner's edit of a listed dataset's public text, waiting for a moderator; the listing
    shows the approved text until it is approved."""

    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    description_html = serializers.CharField(allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField())
    licence = serializers.CharField()
    submitted_at = serializers.DateTimeField()


def _pending_edit(obj: Dataset) -> dict | None:
    if not obj.pending_edit:
        return None
    return PendingEditSerializer({**obj.pending_edit, "submitted_at": obj.pending_edit_at}).data


class OwnerDatasetSerializer(DatasetSerializer):
    """What the owner (and staff) also see: the proposal, validation, the private row count, the
    exact size and SHA-256 of the file, the report of cells that do not fit the schema, and the
    commitment's salt (hex) with its formula, so the owner can re-derive the commitment."""

    # Typed as any Field: DatasetDetailSerializer describes the same answers with plain fields.
    commitment_salt: serializers.Field = serializers.SerializerMethodField(
        help_text="Owner only: the 32-byte salt of the commitment, hex (null if unavailable)."
    )
    commitment_formula: serializers.Field = serializers.SerializerMethodField()
    pending_edit: serializers.Field = serializers.SerializerMethodField(
        help_text="Owner and staff: an edit of the public text waiting for a moderator (null if none)."
    )

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + (
            "pending_edit",
            "original_filename",
            "file_size",
            "file_sha256",
            "commitment_salt",
            "commitment_formula",
            "validation",
            "validation_detail",
            "validation_progress",
            "row_count",
            "schema_report",
            "proposed_schema",
        )

    def get_commitment_salt(self, obj: Dataset) -> str | None:
        try:
            return dataset_commitment_salt(dataset=obj).hex()
        except DecryptionError:
            return None

    def get_commitment_formula(self, obj: Dataset) -> str:
        return COMMITMENT_FORMULA

    @extend_schema_field(PendingEditSerializer(allow_null=True))
    def get_pending_edit(self, obj: Dataset) -> dict | None:
        return _pending_edit(obj)


OWNER_ONLY_FIELDS = tuple(f for f in OwnerDatasetSerializer.Meta.fields if f not in DatasetSerializer.Meta.fields)


class DatasetDetailSerializer(OwnerDatasetSerializer):
    """The schema of ``GET datasets/{id}/``: everyone gets the public fields; the owner and staff
    also get the owner's (optional here, since others' answers leave them out)."""

    # Plain (not read-only) fields here, so the schema can mark them optional; this serializer
    # only describes the answer, which ``dataset_data`` builds.
    commitment_salt = serializers.CharField(
        required=False, allow_null=True, help_text="Owner only: the 32-byte salt of the commitment, hex."
    )
    commitment_formula = serializers.CharField(required=False, help_text="Owner only: how the commitment is built.")
    pending_edit = PendingEditSerializer(
        required=False, allow_null=True, help_text="Owner and staff: an edit of the public text awaiting review."
    )

    class Meta(OwnerDatasetSerializer.Meta):
        extra_kwargs = {name: {"required": False} for name in OWNER_ONLY_FIELDS}


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
    pending_edit = serializers.SerializerMethodField()

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ("open_reports", "validation", "pending_edit")

    @extend_schema_field(PendingEditSerializer(allow_null=True))
    def get_pending_edit(self, obj: Dataset) -> dict | None:
        return _pending_edit(obj)
