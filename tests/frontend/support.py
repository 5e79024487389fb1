"""What the page tests share: a private file with a marker no page may show, the upload form's
fields, and a client signed in as a given user."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from marketplace.models import Dataset

MARKER = b"PRIVATE-MARKER-5b1e0c9d"
# The marker sits in a free-text column whose values are all distinct, so no proposal, schema,
# preview or mock may legitimately carry it.
PRIVATE_CSV = b"age,income,group,note\n" + b"".join(
    f"{20 + i},{1000 + 37 * i},{'ab'[i % 2]},{MARKER.decode() if i == 17 else f'free text {i}'}\n".encode()
    for i in range(40)
)
UPLOAD_FIELDS = {
    "title": "Cardiology visits",
    "description": "Visits to the **cardiology** ward.",
    "tags": "health, cardiology",
    "licence": "CC-BY-4.0",
    "price": "12.5",
    "price_token": "USDC",
    "epsilon_total": "8",
    "epsilon_per_job": "2",
    "delta": "0.00001",
}


def client_as(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def upload(client: Client, data: bytes = PRIVATE_CSV, name: str = "visits.csv", **overrides):
    fields = {**UPLOAD_FIELDS, **overrides}
    return client.post(reverse("frontend:dataset-new"), {**fields, "file": SimpleUploadedFile(name, data)})


def schema_post_data(dataset: Dataset, **changes) -> dict[str, str]:
    """The schema form as the page would submit it, from the proposed schema; ``changes`` maps
    column name to overridden fields."""
    columns = (dataset.declared_schema or dataset.proposed_schema)["columns"]
    data = {
        "col-TOTAL_FORMS": str(len(columns)),
        "col-INITIAL_FORMS": str(len(columns)),
        "col-MIN_NUM_FORMS": "0",
        "col-MAX_NUM_FORMS": "500",
        "public_row_count": str(dataset.public_row_count or dataset.row_count or 40),
    }
    for i, col in enumerate(columns):
        row = {
            "type": col["type"],
            "min": "" if col.get("min") is None else str(col["min"]),
            "max": "" if col.get("max") is None else str(col["max"]),
            "categories": ", ".join(col.get("categories") or []),
            "max_length": str(col.get("max_length") or ""),
            "description": col.get("description", ""),
        }
        if col.get("nullable"):
            row["nullable"] = "on"
        row.update(changes.get(col["name"], {}))
        data.update({f"col-{i}-{key}": value for key, value in row.items() if value is not None})
    return data
