"""factory_boy factories. Datasets are created through the real upload service so their files
exist, encrypted, in the test storage."""

from __future__ import annotations

import copy
import io
from decimal import Decimal

import factory
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from compute_to_data.models import ComputeJob
from compute_to_data.services import budget as budget_services
from marketplace.models import Dataset
from marketplace.services.datasets import (
    ListingFields,
    dataset_create,
    dataset_schema_declare,
    dataset_validate,
    public_row_count_suggest,
)
from marketplace.services.moderation import dataset_transition

DEFAULT_CSV = b"age,income,group\n" + b"".join(f"{20 + i},{1000 + 37 * i},{'ab'[i % 2]}\n".encode() for i in range(30))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.django.Password("correct horse battery staple")
    # Test accounts have confirmed their e-mail (sign-up's confirmation is tested on its own).
    email_verified_at = factory.LazyFunction(timezone.now)


def declarable_schema(dataset: Dataset, data: bytes, filename: str) -> dict:
    """The proposal, with every categorical column that the proposal left empty (no value seen
    often enough to propose) filled in with the values in ``data``, as an owner would type them."""
    schema = copy.deepcopy(dataset.proposed_schema)
    empty = [c for c in schema["columns"] if c["type"] == "categorical" and not c.get("categories")]
    if empty:
        if filename.endswith(".csv"):
            table = pacsv.read_csv(
                pa.BufferReader(data),
                convert_options=pacsv.ConvertOptions(column_types={c["name"]: pa.string() for c in empty}),
            )
        else:
            table = pq.read_table(pa.BufferReader(data))
        for column in empty:
            values = table.column(column["name"]).drop_null().cast(pa.string()).unique().to_pylist()
            column["categories"] = sorted(str(v) for v in values)[:100]
    return schema


def make_dataset(
    *,
    owner,
    title: str = "Clinical measurements",
    description: str = "Blood tests.",
    tags=("health",),
    price="5",
    licence="CC-BY-4.0",
    data: bytes = DEFAULT_CSV,
    filename: str = "data.csv",
    status: str = Dataset.Status.DRAFT,
    moderator=None,
    declare: bool = True,
    public_row_count: int | None = None,
    holdout_fraction: float | None = None,
) -> Dataset:
    """Upload, validate, declare the proposed schema (with a public row count: by default the
    private count to 2 significant figures, as the confirm form suggests) and move to ``status``
    via the services."""
    fh = io.BytesIO(data)
    fh.name = filename
    dataset = dataset_create(
        owner=owner,
        file=fh,
        filename=filename,
        fields=ListingFields(title=title, description=description, tags=list(tags), price=price, licence=licence),
    )
    dataset = dataset_validate(dataset_id=dataset.pk)
    if declare or status != Dataset.Status.DRAFT:
        dataset = dataset_schema_declare(
            dataset=dataset,
            actor=owner,
            schema=declarable_schema(dataset, data, filename),
            public_row_count=public_row_count or public_row_count_suggest(dataset.row_count) or 1,
            holdout_fraction=holdout_fraction,
        )
    path = {
        Dataset.Status.DRAFT: [],
        Dataset.Status.PENDING_REVIEW: ["submit"],
        Dataset.Status.LISTED: ["submit", "approve"],
        Dataset.Status.REJECTED: ["submit", "reject"],
        Dataset.Status.DELISTED: ["submit", "approve", "delist"],
    }[status]
    for action in path:
        actor = owner if action == "submit" else moderator
        if actor is None:
            actor = UserFactory(username="factory-moderator", is_staff=True)
        dataset = dataset_transition(dataset=dataset, actor=actor, action=action, reason=f"{action} in test")
    return dataset


def make_reserved_job(dataset: Dataset, buyer, *, status: str = ComputeJob.Status.PAID, reserve: bool = True, **fields):
    """A dp-statistics job of epsilon 0.5 on ``dataset``, its epsilon reserved from the budget (unless
    ``reserve=False``), then set to ``status`` and ``fields`` as they are (a test's starting point,
    not a checked transition)."""
    job = ComputeJob.objects.create(
        buyer=buyer,
        dataset=dataset,
        algorithm="dp-statistics",
        parameters={},
        params_hash="0x" + "00" * 32,
        epsilon=Decimal("0.5"),
        delta=1e-6,
        status=ComputeJob.Status.PAID,
    )
    if reserve:
        with transaction.atomic():
            budget_services.budget_reserve(job=job)
            job.save(update_fields=["budget_state"])
    ComputeJob.objects.filter(pk=job.pk).update(status=status, **fields)
    return ComputeJob.objects.get(pk=job.pk)
