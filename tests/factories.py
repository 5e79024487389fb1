"""factory_boy factories. Datasets are created through the real upload service so their files
exist, encrypted, in the test storage."""

from __future__ import annotations

import io

import factory
from django.contrib.auth import get_user_model

from marketplace.models import Dataset
from marketplace.services.datasets import ListingFields, dataset_create, dataset_schema_declare, dataset_validate
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
) -> Dataset:
    """Upload, validate, declare the proposed schema and move to ``status`` via the services."""
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
        dataset = dataset_schema_declare(dataset=dataset, actor=owner, schema=dataset.proposed_schema)
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
