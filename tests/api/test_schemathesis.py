"""The REST API against its own OpenAPI schema.

Two parts. The schema itself: it is valid OpenAPI 3, and every operation that takes a body shows
an example of it (so a new endpoint without one fails here). And schemathesis, in process over
WSGI: for every operation in ``/api/schema/`` it sends the schema's examples, boundary cases and
random requests, as an anonymous caller, a signed-in user (API token) and a moderator; no answer
may be a server error, and each one's status code, content type, headers and body must be what
the schema documents.

Path parameters are steered onto seeded objects (datasets in every state, jobs, an order, a
report, a wallet, an artifact) so requests reach past the 404. Each request runs in a savepoint
that is rolled back, so a DELETE or a moderation move does not change what the next request sees.
The chain is not configured here: operations that need it answer 503, which the schema documents.
"""

from __future__ import annotations

import hashlib
import zlib
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core import signals
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chain.models import ChainListing, Order
from chain.services.wallets import wallet_managed_get_or_create
from compute_to_data.models import ComputeJob, JobArtifact, JobLogEntry
from compute_to_data.services import jobs as job_services
from compute_to_data.services.budget import budget_reserve
from compute_to_data.services.receipts import result_hash_of
from marketplace.models import Dataset
from marketplace.services.moderation import report_create
from tests.factories import UserFactory, make_dataset

BODY_METHODS = {"post", "put", "patch"}
# Examples per operation and role: enough for the schema's examples, the boundary cases and some
# random requests, while the whole run stays around a minute.
MAX_EXAMPLES = 12

APP = get_wsgi_application()
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260501,
        # The roles below choose the credentials; no generated Authorization headers or cookies.
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "with-security-parameters": False},
    }
)
_loaded = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP, config=CONFIG)
# Server-sent event streams are left out: a stream polls for minutes and releases its database
# connection when it ends, which in process would close the test's own transaction. Their own
# tests (tests/integrations) drive them over a real server.
STREAMS = {
    (method.upper(), path)
    for path, operations in _loaded.raw_schema["paths"].items()
    for method, operation in operations.items()
    if isinstance(operation, dict)
    and any("text/event-stream" in r.get("content", {}) for r in operation.get("responses", {}).values())
}
schema = _loaded.exclude(func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in STREAMS)


def no_server_error(ctx, response, case):
    """``not_a_server_error``, except the 503 every chain operation answers (and documents) while
    no chain is configured, as here."""
    if response.status_code == 503 and _json(response).get("code") == "chain_unavailable":
        return None
    return not_a_server_error(ctx, response, case)


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def generated_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


# --- the schema itself -------------------------------------------------------------------------


def test_schema_is_valid_openapi():
    validate(generated_schema())


def test_every_operation_with_a_body_has_a_request_example():
    missing = []
    for path, operations in generated_schema()["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if method not in BODY_METHODS or not body:
                continue
            if not any(media.get("examples") or "example" in media for media in body["content"].values()):
                missing.append(f"{method.upper()} {path}")
    assert not missing, "operations without a request example: " + ", ".join(missing)


def test_every_operation_has_a_summary_and_a_success_response():
    problems = []
    for path, operations in generated_schema()["paths"].items():
        for method, operation in operations.items():
            if not operation.get("summary"):
                problems.append(f"{method.upper()} {path}: no summary")
            if not any(code.startswith("2") for code in operation["responses"]):
                problems.append(f"{method.upper()} {path}: no 2xx response")
    assert not problems, problems


# --- schemathesis ------------------------------------------------------------------------------


@contextmanager
def _wsgi_in_test_transaction():
    """Django's WSGI handler closes "old" connections around each request, which would close the
    test's own transaction; the test client switches that off too."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _storages(root: Path) -> dict:
    return {
        **django_settings.STORAGES,
        "datasets": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root / "storage"), "base_url": None},
        },
        "results": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root / "results"), "base_url": None},
        },
    }


def _target(dataset: Dataset) -> str:
    return next(c["name"] for c in dataset.declared_schema["columns"] if c["type"] in ("categorical", "boolean"))


def _job(dataset: Dataset, buyer, status: str, order=None, **fields) -> ComputeJob:
    parameters = job_services.parameters_for(
        dataset=dataset, algorithm="dp-logistic-regression", parameters={"target": _target(dataset), "epsilon": 0.5}
    )
    return ComputeJob.objects.create(
        buyer=buyer,
        dataset=dataset,
        order=order,
        algorithm="dp-logistic-regression",
        parameters=parameters,
        params_hash=job_services.params_hash("dp-logistic-regression", parameters),
        epsilon=Decimal("0.5"),
        delta=parameters["delta"],
        status=status,
        dataset_hash=dataset.commitment,
        **fields,
    )


def _seed() -> tuple[dict, dict]:
    """Datasets in every state (a user's own, and another provider's listed one, published on a
    chain that is never called), an order, jobs (finished with an artifact and a log, queued,
    running on the user's dataset), an open report and a managed wallet. Returns the roles' API
    tokens and, per path parameter, the ids it is steered onto."""
    user = UserFactory(username="alice")
    other = UserFactory(username="bob")
    staff = UserFactory(username="moderator", is_staff=True)
    owned = [
        make_dataset(owner=user, title=f"Alice {status}", status=status, moderator=staff)
        for status in Dataset.Status.values
    ]
    listed = make_dataset(owner=other, title="Bob's listed data", status=Dataset.Status.LISTED, moderator=staff)
    listing = ChainListing.objects.create(
        dataset=listed,
        chain_id=31337,
        state=ChainListing.State.PUBLISHED,
        owner_address="0x" + "1" * 40,
        nft_address="0x" + "2" * 40,
        datatoken_address="0x" + "3" * 40,
        payment_token="0x" + "4" * 40,
        price_units=5_000_000,
        epsilon_cap_units=10_000_000,
        epsilon_per_job_units=1_000_000,
        delta_units=10**13,
        metadata_hash="0x" + "0" * 64,
        operator_ordering_disabled=False,  # listed: the operator opened it
    )
    wallet = wallet_managed_get_or_create(user=user)
    order = Order.objects.create(
        buyer=user,
        dataset=listed,
        listing=listing,
        source=Order.Source.MANAGED,
        consumer_address=wallet.address,
        epsilon=Decimal("0.5"),
        delta=1e-6,
        algorithm_hash="0x" + "5" * 64,
        amount_units=5_000_000,
        tx_hash="0x" + "6" * 64,
        chain_order_id=1,
        status=Order.Status.CONFIRMED,
    )
    finished = _job(
        listed,
        user,
        ComputeJob.Status.FINISHED,
        order=order,
        results={"epsilon_spent": 0.42, "metrics": [], "curve": []},
        epsilon_spent=Decimal("0.42"),
        budget_state=ComputeJob.Budget.CHARGED,
        progress={"phase": "finished"},
    )
    hashes = []
    for name, kind, data in (("model.onnx", "onnx", b"\x08\x07onnx"), ("model_card.json", "card", b'{"title": "DP"}')):
        stored = storages["results"].save(f"job-{finished.pk}/{name}", ContentFile(data, name=name))
        digest = hashlib.sha256(data).hexdigest()
        JobArtifact.objects.create(
            job=finished, name=name, kind=kind, size=len(data), sha256=digest, storage_name=stored
        )
        hashes.append((name, digest))
    ComputeJob.objects.filter(pk=finished.pk).update(result_hash=result_hash_of(hashes))
    JobLogEntry.objects.create(job=finished, source=JobLogEntry.Source.PLATFORM, message="Job finished.")
    queued = _job(listed, user, ComputeJob.Status.QUEUED)
    budget_reserve(job=queued)
    queued.save(update_fields=["budget_state"])
    on_own = _job(owned[2], other, ComputeJob.Status.RUNNING, progress={"phase": "training", "epoch": 1})
    report = report_create(dataset=listed, reporter=user, reason="Looks like it holds personal data.")
    tokens = {
        "anonymous": None,
        "user": Token.objects.create(user=user).key,
        "staff": Token.objects.create(user=staff).key,
    }
    ids = {
        "dataset_id": [d.pk for d in (*owned, listed)],
        "job_id": [finished.pk, queued.pk, on_own.pk],
        "order_id": [order.pk],
        "wallet_id": [wallet.pk],
        "report_id": [report.pk],
        "name": ["model.onnx", "model_card.json", "missing.bin"],
    }
    return tokens, ids


@pytest.fixture(scope="module")
def _seeded(django_db_setup, django_db_blocker, tmp_path_factory):
    """Seeded once for the module, inside a transaction rolled back at its end; each test's own
    transaction (``db``) nests in it as a savepoint. Seeding per test would cost a third of a
    second for each of the ~150 operation x role tests."""
    root = tmp_path_factory.mktemp("schemathesis")
    with django_db_blocker.unblock(), override_settings(STORAGES=_storages(root)):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield root, _seed()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture
def world(_seeded, db, settings):
    root, seeded = _seeded
    settings.STORAGES = _storages(root)  # the seeded files, not the per-test folder of isolated_storage
    with _wsgi_in_test_transaction():
        yield seeded


def _steer(value, choices: list):
    """A seeded id for most generated values of the parameter's own type; the generated value
    itself for one in len(choices) + 1 (most likely unknown: "not found"), and for values of
    another type (the negative cases: "not found" too, or "invalid")."""
    if type(value) is not type(choices[0]):
        return value
    key = value if isinstance(value, int) else zlib.crc32(value.encode())
    index = abs(key) % (len(choices) + 1)
    return value if index == len(choices) else choices[index]


def _steer_case(case, ids: dict) -> None:
    for name, value in list((case.path_parameters or {}).items()):
        if name in ids:
            case.path_parameters[name] = _steer(value, ids[name])
    if isinstance(case.body, dict):
        for field, name in (("dataset", "dataset_id"), ("order", "order_id")):
            if field in case.body:
                case.body[field] = _steer(case.body[field], ids[name])


@pytest.mark.parametrize("role", ["anonymous", "user", "staff"])
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema(case, role, world):
    tokens, ids = world
    _steer_case(case, ids)
    headers = {"Authorization": f"Token {tokens[role]}"} if tokens[role] else {}
    with transaction.atomic():
        response = case.call(headers=headers)
        transaction.set_rollback(True)
    case.validate_response(response, checks=CHECKS, headers=headers)
