"""Demo data for ``make run``: three users and realistic datasets from several domains, uploaded
through the real services (encrypted, validated, schema declared, moderated), published on chain,
and a few compute jobs the demo buyer ran on them (finished with receipts on chain, and one refunded),
so every page has something to show. Idempotent."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections, transaction
from django.test.utils import override_settings
from django.utils import timezone

from marketplace.models import Dataset, User
from marketplace.services.datasets import (
    ListingFields,
    csv_bytes,
    dataset_create,
    dataset_schema_declare,
    dataset_validate,
    public_row_count_suggest,
)
from marketplace.services.moderation import dataset_transition, report_create

logger = logging.getLogger(__name__)

USERS = [
    # username, env var for the password, default password, staff, organisation
    ("provider", "DEMO_PROVIDER_PASSWORD", "provider-demo-2026", False, "St Elsewhere Hospital Research"),
    ("buyer", "DEMO_BUYER_PASSWORD", "buyer-demo-2026", False, "Acme AI Ltd"),
    ("admin", "DEMO_ADMIN_PASSWORD", "admin-demo-2026", True, "Marketplace operations"),
]


def _with_typed_categories(proposed: dict, data: bytes, filename: str) -> dict:
    """The proposal with every categorical column it left empty filled in with the file's values."""
    columns = [dict(c) for c in proposed["columns"]]
    empty = [c for c in columns if c["type"] == "categorical" and not c.get("categories")]
    if empty:
        if filename.endswith(".parquet"):
            table = pq.read_table(pa.BufferReader(data))
        else:
            import pyarrow.csv as pacsv

            types = {c["name"]: pa.string() for c in empty}
            table = pacsv.read_csv(pa.BufferReader(data), convert_options=pacsv.ConvertOptions(column_types=types))
        for column in empty:
            values = table.column(column["name"]).drop_null().cast(pa.string()).unique().to_pylist()
            column["categories"] = sorted(values)[:100]
    return {**proposed, "columns": columns}


def _cardiology(rng: np.random.Generator, n: int = 3000) -> bytes:
    age = rng.integers(29, 80, n)
    sex = rng.choice(["F", "M"], n)
    smoker = rng.random(n) < 0.27
    chol = np.clip(rng.normal(215, 40, n) + (age - 50) * 0.6, 110, 420).round(0)
    bp = np.clip(rng.normal(128, 17, n) + (age - 50) * 0.3, 85, 210).round(0)
    hr = np.clip(rng.normal(150, 22, n) - (age - 50) * 0.7, 70, 205).round(0)
    region = rng.choice(["north", "south", "east", "west"], n)
    logit = -9 + 0.07 * age + 0.012 * chol + 0.9 * smoker + 0.5 * (sex == "M") - 0.01 * hr + 0.01 * bp
    disease = rng.random(n) < 1 / (1 + np.exp(-logit))
    rows = zip(
        age,
        sex,
        bp.astype(int),
        chol.astype(int),
        hr.astype(int),
        np.where(smoker, "true", "false"),
        region,
        disease.astype(int),
        strict=True,
    )
    return csv_bytes(
        ["age", "sex", "resting_bp", "cholesterol", "max_heart_rate", "smoker", "region", "heart_disease"], rows
    )


def _loans(rng: np.random.Generator, n: int = 4000) -> bytes:
    income = np.clip(rng.lognormal(10.6, 0.5, n), 9000, 400000).round(-2)
    amount = np.clip(income * rng.uniform(0.05, 0.6, n), 1000, 150000).round(-2)
    term = rng.choice([12, 24, 36, 48, 60], n)
    score = np.clip(rng.normal(690, 60, n), 300, 850).round(0).astype(int)
    years = rng.integers(0, 41, n)
    home = rng.choice(["rent", "mortgage", "own"], n, p=[0.45, 0.4, 0.15])
    purpose = rng.choice(["car", "home_improvement", "debt_consolidation", "education", "business"], n)
    logit = 2.5 - 0.008 * (score - 600) + 2.0 * amount / income - 0.03 * years
    default = rng.random(n) < 1 / (1 + np.exp(-(logit - 3)))
    rows = zip(income, amount, term, score, years, home, purpose, default.astype(int), strict=True)
    return csv_bytes(
        [
            "annual_income",
            "loan_amount",
            "term_months",
            "credit_score",
            "employment_years",
            "home_ownership",
            "purpose",
            "defaulted",
        ],
        rows,
    )


def _smart_meters(rng: np.random.Generator, n: int = 6000) -> bytes:
    hours = rng.integers(0, 24, n)
    temp = rng.normal(11, 7, n).round(1)
    occupants = rng.integers(1, 7, n)
    tariff = rng.choice(["flat", "time_of_use", "ev"], n, p=[0.6, 0.3, 0.1])
    kwh = np.clip(
        0.2
        + 0.12 * occupants
        + 0.35 * np.isin(hours, [7, 8, 18, 19, 20])
        + 0.03 * np.abs(temp - 18)
        + 1.2 * (tariff == "ev") * np.isin(hours, [1, 2, 3])
        + rng.normal(0, 0.1, n),
        0.01,
        12,
    ).round(3)
    stamps = np.datetime64("2023-01-01T00:00") + rng.integers(0, 365 * 24, n).astype("timedelta64[h]")
    table = pa.table(
        {
            "reading_time": pa.array(stamps.astype("datetime64[s]")),
            "hour_of_day": pa.array(hours, pa.int32()),
            "outdoor_temp_c": temp,
            "occupants": pa.array(occupants, pa.int32()),
            "tariff": tariff.tolist(),
            "kwh": kwh,
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _churn(rng: np.random.Generator, n: int = 2500) -> bytes:
    tenure = rng.integers(1, 73, n)
    plan = rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.35, 0.15])
    spend = (rng.normal(35, 10, n) + (plan == "standard") * 20 + (plan == "premium") * 55).round(2)
    tickets = rng.poisson(1.2, n)
    contract = rng.choice(["monthly", "annual", "two_year"], n, p=[0.55, 0.3, 0.15])
    logit = 0.8 - 0.04 * tenure + 0.35 * tickets + 1.0 * (contract == "monthly") - 0.5 * (plan == "premium")
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    rows = zip(tenure, plan, spend, tickets, contract, churned.astype(int), strict=True)
    return csv_bytes(["tenure_months", "plan", "monthly_spend", "support_tickets", "contract", "churned"], rows)


def _air_quality(rng: np.random.Generator, n: int = 3000) -> bytes:
    site = rng.choice(["roadside", "urban_background", "industrial", "suburban"], n)
    temp = rng.normal(13, 8, n).round(1)
    humidity = np.clip(rng.normal(70, 15, n), 15, 100).round(0).astype(int)
    no2 = np.clip(rng.gamma(3, 9, n) + (site == "roadside") * 25, 1, 250).round(1)
    pm25 = np.clip(rng.gamma(2.5, 4, n) + (site == "industrial") * 8, 0.5, 180).round(1)
    o3 = np.clip(60 - 0.3 * no2 + 1.2 * temp + rng.normal(0, 8, n), 1, 200).round(1)
    rows = zip(site, temp, humidity, no2, pm25, o3, strict=True)
    return csv_bytes(["site_type", "temperature_c", "humidity_pct", "no2_ugm3", "pm25_ugm3", "o3_ugm3"], rows)


@dataclass(frozen=True)
class _DemoDataset:
    build: Callable[[np.random.Generator], bytes]  # the file's content
    filename: str
    status: Literal["listed", "pending_review"]  # where moderation leaves it
    title: str
    description: str
    tags: list[str]
    licence: str
    price: str
    epsilon_total: str
    epsilon_per_job: str
    delta: float

    def listing(self) -> ListingFields:
        return ListingFields(
            title=self.title,
            description=self.description,
            tags=self.tags,
            licence=self.licence,
            price=self.price,
            epsilon_total=self.epsilon_total,
            epsilon_per_job=self.epsilon_per_job,
            delta=self.delta,
            delta_total=1e-4,
            holdout_fraction=0.2,
        )


DATASETS = [
    _DemoDataset(
        build=_cardiology,
        filename="cardiology_outpatients.csv",
        status="listed",
        title="Cardiology outpatients 2019-2023",
        description=(
            "De-identified outpatient measurements from a regional cardiology service.\n\n"
            "* **Target:** `heart_disease` (angiography-confirmed)\n"
            "* Blood pressure, cholesterol and exercise heart rate per visit\n\n"
            "Only DP results leave the sandbox; train a classifier or ask for DP statistics."
        ),
        tags=["health", "cardiology", "classification"],
        licence="CC-BY-NC-4.0",
        price="25",
        epsilon_total="8",
        epsilon_per_job="1",
        delta=1e-5,
    ),
    _DemoDataset(
        build=_loans,
        filename="loan_applications.csv",
        status="listed",
        title="Retail bank loan applications and defaults",
        description=(
            "Consumer loan applications with the outcome after 24 months. Useful for credit-risk "
            "models under differential privacy.\n\n| column | meaning |\n|---|---|\n"
            "| `defaulted` | 1 if the loan defaulted |\n| `credit_score` | bureau score at application |"
        ),
        tags=["finance", "credit-risk", "classification"],
        licence="proprietary",
        price="120",
        epsilon_total="5",
        epsilon_per_job="0.5",
        delta=1e-6,
    ),
    _DemoDataset(
        build=_smart_meters,
        filename="smart_meter_readings.parquet",
        status="listed",
        title="Household smart-meter electricity consumption",
        description="Hourly electricity consumption readings with tariff and weather, from 2023. Parquet.",
        tags=["energy", "time-series", "regression"],
        licence="CC-BY-4.0",
        price="0",
        epsilon_total="20",
        epsilon_per_job="2",
        delta=1e-5,
    ),
    _DemoDataset(
        build=_churn,
        filename="telco_churn.csv",
        status="listed",
        title="Subscription customer churn",
        description="Tenure, plan, spend and support tickets of subscription customers, and whether they churned.",
        tags=["retail", "telecom", "churn"],
        licence="CC-BY-SA-4.0",
        price="40",
        epsilon_total="10",
        epsilon_per_job="1",
        delta=1e-5,
    ),
    _DemoDataset(
        build=_air_quality,
        filename="air_quality_sensors.csv",
        status="pending_review",
        title="Urban air quality sensor network",
        description="Hourly NO2, PM2.5 and O3 from low-cost sensors, with temperature and humidity.",
        tags=["climate", "air-quality", "regression"],
        licence="ODbL-1.0",
        price="15",
        epsilon_total="10",
        epsilon_per_job="2",
        delta=1e-5,
    ),
]


# Jobs the demo buyer runs (dataset title, algorithm, parameters, how it ends). "refunded": cancelled
# before it started, so its epsilon goes back to the budget and its payment back to the buyer.
DEMO_JOBS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "Cardiology outpatients 2019-2023",
        "dp-statistics",
        {"columns": ["age", "cholesterol", "resting_bp", "region"], "epsilon": 0.5},
        "finished",
    ),
    (
        "Cardiology outpatients 2019-2023",
        "dp-logistic-regression",
        {"target": "heart_disease", "epochs": 3, "batch_size": 256, "epsilon": 1.0},
        "finished",
    ),
    (
        "Retail bank loan applications and defaults",
        "dp-logistic-regression",
        {
            "target": "defaulted",
            "features": ["annual_income", "loan_amount", "credit_score", "employment_years", "home_ownership"],
            "epochs": 2,
            "batch_size": 256,
            "epsilon": 0.5,
        },
        "finished",
    ),
    ("Retail bank loan applications and defaults", "dp-statistics", {"epsilon": 0.3}, "refunded"),
]


class Command(BaseCommand):
    help = "Create demo users, datasets and jobs (idempotent) and print the credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args: Any, **options: Any) -> None:
        users = {}
        for username, env_name, default, staff, organisation in USERS:
            password = os.environ.get(env_name, default)
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "email": f"{username}@demo.local",
                    "is_staff": staff,
                    "is_superuser": staff,
                    "organisation": organisation,
                    # Demo accounts come confirmed, so the demo provider can submit datasets.
                    "email_verified_at": timezone.now(),
                },
            )
            if created:
                user.set_password(password)
                user.save()
            elif user.email_verified_at is None:  # seeded before e-mail confirmation existed
                user.email_verified_at = timezone.now()
                user.save(update_fields=["email_verified_at"])
            users[username] = (user, password)
        provider, admin, buyer = users["provider"][0], users["admin"][0], users["buyer"][0]
        rng = np.random.default_rng(2026)
        for spec in DATASETS:
            if Dataset.objects.filter(owner=provider, title=spec.title).exists():
                continue  # seeded on an earlier start; skip generating its data again
            self._publish(provider, admin, buyer, spec.build(rng), spec)
        if settings.CHAIN_RPC_URL:
            self._seed_chain([u for u, _ in users.values()], provider)
            self._seed_jobs(buyer, provider)
        base = f"http://127.0.0.1:{options['port']}/"
        self.stdout.write(self.style.SUCCESS("\nDemo marketplace ready."))
        self.stdout.write(f"  Open:      {base}")
        self.stdout.write(f"  API docs:  {base}api/docs/")
        for username, (user, password) in users.items():
            role = "moderator (staff)" if user.is_staff else ("data provider" if username == "provider" else "buyer")
            self.stdout.write(f"  {role:<18} username: {username:<9} password: {password}")
        self.stdout.write("")

    def _seed_chain(self, users: list[User], provider: User) -> None:
        """Fund the demo users' managed wallets and publish the provider's datasets on chain.
        Runs the chain tasks inline so the demo is ready when the server starts."""
        from chain import client
        from chain.faucet import fund_address
        from chain.models import ChainListing
        from chain.services.publishing import (
            dataset_publish,
            listing_ordering_sync_for_dataset,
            listings_retire_stale,
        )
        from chain.services.wallets import wallet_managed_get_or_create
        from config.celery_app import app

        eager = app.conf.task_always_eager
        app.conf.task_always_eager = True
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        try:
            w3 = client.web3()
            dep = client.deployment()
            deployment = {"contracts": dep.contracts}
            # A development chain started afresh (state file removed): publish its datasets again.
            listings_retire_stale(chain_id=dep.chain_id, genesis_hash=dep.genesis_hash)
            for user in users:
                wallet = wallet_managed_get_or_create(user=user)
                fund_address(w3, deployment, wallet.address)
                self.stdout.write(f"  wallet: {user.username:<9} {wallet.address} (funded with test ether and USDC)")
            for dataset in Dataset.objects.filter(owner=provider, validation=Dataset.Validation.VALID).exclude(
                status__in=[Dataset.Status.REJECTED, Dataset.Status.DELISTED]
            ):
                listing = ChainListing.objects.filter(dataset=dataset).first()
                if listing is None or listing.state == ChainListing.State.FAILED:
                    listing = dataset_publish(dataset=dataset, user=provider)
                    listing.refresh_from_db()
                    self.stdout.write(f"  on chain: {dataset.title}: {listing.get_state_display()} {listing.error}")
                listing_ordering_sync_for_dataset(dataset.pk)
        finally:
            app.conf.task_always_eager = eager

    def _seed_jobs(self, buyer: User, provider: User) -> None:
        """Run the demo buyer's jobs inline (the worker is not up yet), through the real services with
        Celery eager: each is paid from the buyer's managed wallet (order confirmed on chain), run in
        the sandbox, and settled on chain (receipt, or refund for the one cancelled before it ran).
        The runs go side by side, so the seed takes about as long as the slowest job. A job already
        seeded (same dataset, algorithm and epsilon) is not run again; one that cannot run is
        reported and skipped."""
        from compute_to_data.models import ComputeJob
        from compute_to_data.sandbox import SandboxUnavailable, sandbox_preflight
        from compute_to_data.services.execution import sandbox_config
        from config.celery_app import app

        todo: list[tuple[Dataset, str, dict[str, Any], str]] = []
        for title, algorithm, parameters, outcome in DEMO_JOBS:
            dataset = Dataset.objects.filter(owner=provider, title=title, status=Dataset.Status.LISTED).first()
            if dataset is None:
                continue
            seeded = ComputeJob.objects.filter(
                buyer=buyer, dataset=dataset, algorithm=algorithm, epsilon=Decimal(str(parameters["epsilon"]))
            )
            if not seeded.exists():
                todo.append((dataset, algorithm, parameters, outcome))
        if not todo:
            return
        try:
            sandbox_preflight(sandbox_config())
        except SandboxUnavailable as exc:
            self.stdout.write(self.style.WARNING(f"  demo jobs skipped: no compute sandbox on this machine ({exc})"))
            return
        started = time.monotonic()
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            # Quicker looks at the chain while the seed waits for its transactions; job e-mails stay quiet.
            with override_settings(
                CHAIN_RECEIPT_POLL_SECONDS=0.1, EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"
            ):
                job_ids = self._demo_jobs_run(buyer, todo)
        finally:
            app.conf.task_always_eager = eager
        for job in ComputeJob.objects.filter(pk__in=job_ids).select_related("order", "dataset").order_by("pk"):
            order = job.order.get_status_display().lower() if job.order else "no order"
            line = f"  demo job {job.pk}: {job.algorithm} on {job.dataset.title}: {job.get_status_display()} ({order})"
            if job.status in (ComputeJob.Status.FINISHED, ComputeJob.Status.CANCELLED):
                self.stdout.write(line)
            else:
                self.stdout.write(self.style.WARNING(f"{line}: {job.reason}"))
        self.stdout.write(f"  demo jobs: {len(job_ids)} in {time.monotonic() - started:.1f} s")

    def _demo_jobs_run(self, buyer: User, todo: list[tuple[Dataset, str, dict[str, Any], str]]) -> list[int]:
        """Pay for every job (one after the other: one wallet), run the paid ones side by side, then
        settle them on chain one after the other (one operator). Returns the jobs' ids."""
        from compute_to_data import tasks as compute_tasks
        from compute_to_data.models import ComputeJob
        from compute_to_data.services.execution import job_run
        from compute_to_data.services.jobs import job_cancel, job_create, job_settle

        def warn(algorithm: str, dataset: Dataset, exc: Exception) -> None:
            detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
            self.stdout.write(self.style.WARNING(f"  demo job {algorithm} on {dataset.title}: {detail}"))

        def run(job_id: int) -> None:
            try:
                job_run(job_id)  # ends the job (finished or failed) whatever happens in the sandbox
            except Exception:
                logger.exception("demo job %s could not be run", job_id)
            finally:
                connections.close_all()  # this thread's own connection

        ids, to_run = [], []
        with (
            mock.patch.object(compute_tasks.job_run_task, "delay", lambda job_id: None),
            mock.patch.object(compute_tasks.job_settle_task, "delay", lambda job_id: None),
        ):
            for dataset, algorithm, parameters, outcome in todo:
                try:
                    job = job_create(user=buyer, dataset=dataset, algorithm=algorithm, parameters=parameters)
                    ids.append(job.pk)
                    if outcome == "refunded":
                        job_cancel(job=job, user=buyer)  # before it started: budget released, payment refunded
                    else:
                        to_run.append(job.pk)
                except Exception as exc:  # one job that cannot run must not stop the demo
                    warn(algorithm, dataset, exc)
            with ThreadPoolExecutor(max_workers=max(len(to_run), 1)) as pool:
                list(pool.map(run, to_run))
        for job_id in ids:
            try:
                job_settle(job_id=job_id)
            except Exception as exc:
                job = ComputeJob.objects.select_related("dataset").get(pk=job_id)
                warn(job.algorithm, job.dataset, exc)
        return ids

    def _publish(self, provider: User, admin: User, buyer: User, data: bytes, spec: _DemoDataset) -> None:
        fh = io.BytesIO(data)
        with transaction.atomic():
            dataset = dataset_create(owner=provider, file=fh, filename=spec.filename, fields=spec.listing())
        dataset = dataset_validate(dataset_id=dataset.pk)
        # As the provider would on the confirm page: type the categories the proposal left out
        # (too rare to propose) and declare the row count, rounded, as public.
        dataset = dataset_schema_declare(
            dataset=dataset,
            actor=provider,
            schema=_with_typed_categories(dataset.proposed_schema, data, spec.filename),
            public_row_count=public_row_count_suggest(dataset.row_count) or 1,
        )
        dataset = dataset_transition(dataset=dataset, actor=provider, action="submit")
        if spec.status == "listed":
            dataset = dataset_transition(
                dataset=dataset,
                actor=admin,
                action="approve",
                reason="Schema and description checked; no direct identifiers.",
            )
            if "churn" in dataset.title.lower():
                report_create(
                    dataset=dataset,
                    reporter=buyer,
                    reason="The description does not say which country the customers are from.",
                )
        self.stdout.write(f"  seeded: {dataset.title} ({dataset.get_status_display()})")
