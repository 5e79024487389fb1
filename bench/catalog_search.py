"""Catalogue search benchmark: 100,000 seeded listings in PostgreSQL, searched through the real
API view (``GET /api/v1/datasets/?...``) in-process.

Run from the repository root::

    .venv/bin/python bench/catalog_search.py [--rows 100000] [--requests 200] [--keep]

Needs PostgreSQL: ``BENCH_DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432/ppdx_bench).
The database is created when missing and dropped at the end unless ``--keep``. A kept database
that already holds the requested number of rows is reused without seeding."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sys
import time
import traceback
import warnings
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile, remove_tree, report, setup_django  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/ppdx_bench"
TARGET_P95_MS = 30.0
BATCH = 5_000

# --- realistic listing text, per domain -----------------------------------------------------

REGIONS = [
    "England",
    "Scotland",
    "Wales",
    "Ireland",
    "France",
    "Germany",
    "Spain",
    "Italy",
    "the Netherlands",
    "Sweden",
    "Norway",
    "Poland",
    "Portugal",
    "California",
    "Texas",
    "New York State",
    "Ontario",
    "Brazil",
    "India",
    "Kenya",
    "Japan",
    "Australia",
    "the Nordics",
    "the EU",
    "West Africa",
    "South-East Asia",
    "the Midwest",
    "Greater London",
    "Bavaria",
    "Catalonia",
]
PERIODS = [
    "2015-2020",
    "2018-2023",
    "2019-2024",
    "2020-2024",
    "2021",
    "2022",
    "2023",
    "2024",
    "Q1 2024",
    "2010-2020",
    "2016-2022",
    "the last decade",
]

DOMAINS: dict[str, dict] = {
    "health": {
        "subjects": [
            "heart disease",
            "type 2 diabetes",
            "hospital admissions",
            "stroke outcomes",
            "cancer screening",
            "blood pressure",
            "asthma prevalence",
            "maternity outcomes",
            "vaccination uptake",
            "GP prescriptions",
            "emergency department waits",
            "obesity",
            "cardiovascular risk",
            "sleep quality",
            "mental health referrals",
            "dementia diagnoses",
        ],
        "kinds": [
            "patient cohort",
            "registry extract",
            "clinical trial outcomes",
            "survey",
            "anonymised records",
            "longitudinal study",
            "hospital episode statistics",
        ],
        "sentences": [
            "De-identified patient-level records with age band, sex, smoking status and comorbidities.",
            "Includes cholesterol, BMI, systolic and diastolic blood pressure and diagnosis codes (ICD-10).",
            "Collected by participating hospitals and primary care practices under ethics approval.",
            "Outcomes include readmission within 30 days, length of stay and mortality at one year.",
            "Useful for risk prediction models of coronary heart disease and heart failure.",
            "Each row is one patient visit; identifiers were removed and dates shifted.",
            "Lab results are reported in SI units with reference ranges per analyte.",
            "Linked to prescribing data for statins, beta blockers and ACE inhibitors.",
        ],
        "tags": ["health", "cardiology", "clinical", "epidemiology", "public-health", "diabetes"],
    },
    "finance": {
        "subjects": [
            "credit card transactions",
            "loan defaults",
            "mortgage applications",
            "stock prices",
            "bond yields",
            "fraud alerts",
            "SME lending",
            "consumer credit scores",
            "payment volumes",
            "foreign exchange rates",
            "insurance claims",
            "customer churn",
        ],
        "kinds": [
            "transaction log",
            "daily panel",
            "tick data",
            "portfolio snapshot",
            "risk dataset",
            "anonymised ledger",
        ],
        "sentences": [
            "Transaction amounts, merchant category codes and timestamps at second resolution.",
            "Labels mark chargebacks and confirmed fraud reported within 90 days.",
            "Loan-level data with interest rate, term, income band and repayment status.",
            "Prices are end-of-day closes adjusted for splits and dividends.",
            "Retail banking customers with account tenure, product holdings and churn flag.",
            "Suitable for credit risk scoring, anomaly detection and survival models.",
            "All monetary values are in EUR and deflated to 2020 prices.",
        ],
        "tags": ["finance", "banking", "fraud", "credit", "markets", "insurance"],
    },
    "energy": {
        "subjects": [
            "electricity consumption",
            "smart meter readings",
            "solar generation",
            "wind output",
            "gas demand",
            "grid frequency",
            "household energy use",
            "EV charging sessions",
            "heat pump performance",
            "electricity prices",
            "battery storage dispatch",
        ],
        "kinds": ["half-hourly readings", "time series", "plant telemetry", "market data", "metering extract"],
        "sentences": [
            "Half-hourly electricity consumption in kWh from residential smart meters.",
            "Includes tariff type, property type and heating fuel for each meter.",
            "Generation output of solar and wind farms with curtailment events.",
            "Day-ahead and intraday electricity prices with system imbalance volumes.",
            "Weather covariates (temperature, irradiance, wind speed) are joined per hour.",
            "Meters with more than 10% missing readings were excluded.",
            "Useful for load forecasting, demand response and tariff design.",
        ],
        "tags": ["energy", "electricity", "smart-meters", "renewables", "time-series", "grid"],
    },
    "retail": {
        "subjects": [
            "customer churn",
            "basket analysis",
            "online orders",
            "store footfall",
            "product returns",
            "loyalty card purchases",
            "price elasticity",
            "promotions uplift",
            "inventory levels",
            "customer reviews",
            "click-stream sessions",
        ],
        "kinds": ["sales extract", "order history", "panel data", "e-commerce log", "POS transactions"],
        "sentences": [
            "Order lines with SKU, quantity, unit price, discount and store identifier.",
            "Customer-level features: recency, frequency, monetary value and churn label.",
            "Weekly sales per store and category with promotion flags and holidays.",
            "Web sessions with page views, add-to-basket events and conversions.",
            "Returns are linked to the original order and carry a reason code.",
            "Ideal for demand forecasting, recommendation and customer churn prediction.",
        ],
        "tags": ["retail", "ecommerce", "customers", "sales", "marketing", "churn"],
    },
    "mobility": {
        "subjects": [
            "bike share trips",
            "traffic counts",
            "bus punctuality",
            "taxi journeys",
            "road accidents",
            "rail passenger flows",
            "parking occupancy",
            "e-scooter rides",
            "commuting patterns",
            "air traffic movements",
        ],
        "kinds": ["trip records", "sensor counts", "GPS traces", "timetable performance", "journey survey"],
        "sentences": [
            "Trip start and end times, stations and duration; coordinates rounded to 100 m.",
            "Vehicle counts per 15 minutes from inductive loops on major roads.",
            "Punctuality measured against the published timetable at each stop.",
            "Collision records with severity, road type, weather and lighting conditions.",
            "Useful for transport planning, congestion modelling and safety analysis.",
        ],
        "tags": ["mobility", "transport", "traffic", "urban", "geospatial", "safety"],
    },
    "climate": {
        "subjects": [
            "temperature anomalies",
            "rainfall",
            "air quality",
            "CO2 emissions",
            "flood events",
            "sea level",
            "drought index",
            "wildfire perimeters",
            "snow cover",
            "heatwave days",
        ],
        "kinds": ["gridded observations", "station records", "reanalysis", "emissions inventory", "satellite product"],
        "sentences": [
            "Daily station observations of temperature, precipitation and humidity.",
            "PM2.5, PM10, NO2 and ozone concentrations from monitoring sites.",
            "Greenhouse gas emissions by sector and fuel, in tonnes CO2 equivalent.",
            "Gridded at 0.25 degree resolution with quality flags per cell.",
            "Suitable for climate risk assessment and downscaling studies.",
        ],
        "tags": ["climate", "weather", "air-quality", "emissions", "environment", "geospatial"],
    },
    "agriculture": {
        "subjects": [
            "crop yields",
            "soil moisture",
            "livestock counts",
            "fertiliser use",
            "irrigation",
            "harvest dates",
            "pest outbreaks",
            "farm incomes",
            "milk production",
            "grain prices",
        ],
        "kinds": ["field trials", "farm survey", "sensor network", "census extract", "remote sensing"],
        "sentences": [
            "Field-level yields in tonnes per hectare with variety and sowing date.",
            "Soil samples with pH, organic matter, nitrogen, phosphorus and potassium.",
            "Sensor readings of soil moisture and temperature every 30 minutes.",
            "Farm business survey with income, costs and subsidies per holding.",
            "Useful for yield prediction, precision agriculture and supply planning.",
        ],
        "tags": ["agriculture", "crops", "soil", "food", "farming", "sensors"],
    },
    "telecom": {
        "subjects": [
            "customer churn",
            "network latency",
            "mobile data usage",
            "call detail records",
            "cell tower load",
            "broadband speeds",
            "dropped calls",
            "roaming usage",
            "subscriber tenure",
            "5G coverage",
        ],
        "kinds": ["subscriber extract", "network KPIs", "probe data", "usage log", "coverage survey"],
        "sentences": [
            "Monthly subscriber usage with plan, tenure, complaints and churn indicator.",
            "Network KPIs per cell: throughput, latency, packet loss and dropped calls.",
            "Call detail records aggregated per hour with anonymised subscriber ids.",
            "Measured broadband download and upload speeds by postcode district.",
            "Suitable for customer churn prediction, capacity planning and QoS analysis.",
        ],
        "tags": ["telecom", "network", "mobile", "customers", "churn", "broadband"],
    },
}
GENERIC_TAGS = [
    "time-series",
    "anonymised",
    "open-data",
    "europe",
    "north-america",
    "daily",
    "monthly",
    "survey",
    "synthetic",
    "benchmark",
    "machine-learning",
    "research",
]
GENERIC_SENTENCES = [
    "Data dictionary included; all columns are documented with units and allowed values.",
    "Updated quarterly; this listing covers the latest complete release.",
    "Access is compute-to-data only: analyses run on the provider's side with differential privacy.",
    "Quality checked for duplicates, outliers and impossible values.",
    "Rows: roughly {rows:,}. Columns: {cols}.",
    "Please cite the provider when publishing results derived from this dataset.",
]
TITLE_PATTERNS = [
    "{Subject} in {region}, {period}",
    "{Subject} {kind} ({region})",
    "{region} {subject} {kind}, {period}",
    "{Subject}: {kind} {period}",
    "Monthly {subject} by region, {period}",
    "{Subject} and outcomes, {region}",
]
LICENCES = (
    ["CC-BY-4.0"] * 40
    + ["CC-BY-SA-4.0"] * 10
    + ["CC-BY-NC-4.0"] * 15
    + ["CC0-1.0"] * 10
    + ["ODbL-1.0"] * 5
    + ["proprietary"] * 20
)
OTHER_STATUSES = ["draft", "pending_review", "rejected", "delisted"]

QUERIES: list[tuple[str, str]] = [
    ('q="heart disease"', "q=heart+disease"),
    ('q="electricity consumption"&sort=newest', "q=electricity+consumption&sort=newest"),
    ("tags=finance&sort=price", "tags=finance&sort=price"),
    ('q="customer churn"&licence=CC-BY-4.0&price_max=50', "q=customer+churn&licence=CC-BY-4.0&price_max=50"),
    ("no q, sort=newest (first page)", "sort=newest"),
    ("no q, sort=newest, page=50", "sort=newest&page=50"),
]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def listing_text(rng: random.Random, domain: str) -> tuple[str, str, list[str]]:
    spec = DOMAINS[domain]
    subject = rng.choice(spec["subjects"])
    kind = rng.choice(spec["kinds"])
    region = rng.choice(REGIONS)
    period = rng.choice(PERIODS)
    title = rng.choice(TITLE_PATTERNS).format(
        Subject=_cap(subject), subject=subject, kind=kind, region=region, period=period
    )[:200]
    body = rng.sample(spec["sentences"], k=min(len(spec["sentences"]), rng.randint(2, 4)))
    extra = rng.sample(GENERIC_SENTENCES, k=rng.randint(1, 2))
    cols = rng.randint(5, 60)
    intro = f"{_cap(kind)} of {subject} in {region} covering {period}."
    paragraphs = [intro, " ".join(body), " ".join(s.format(rows=rng.randint(1, 5000) * 1000, cols=cols) for s in extra)]
    if rng.random() < 0.3:
        paragraphs.append("**Columns**\n\n- `id`: row identifier\n- `date`: observation date\n- `value`: measurement")
    description = "\n\n".join(paragraphs)
    n_tags = rng.randint(2, 4)
    own = rng.sample(spec["tags"], k=min(n_tags, len(spec["tags"])))
    tags = own[: max(1, n_tags - 1)]
    if len(tags) < n_tags:
        tags.append(rng.choice(GENERIC_TAGS))
    return title, description, sorted(set(tags))


# --- database lifecycle ---------------------------------------------------------------------


def _admin_connect(url: str):
    import psycopg2

    parts = urlparse(url)
    conn = psycopg2.connect(
        dbname="postgres",
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
    )
    conn.autocommit = True
    return conn


def _db_name(url: str) -> str:
    name = urlparse(url).path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"Unsupported bench database name {name!r}")
    return name


def database_ensure(url: str) -> bool:
    """Create the bench database when missing; return whether it already existed."""
    name = _db_name(url)
    conn = _admin_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone():
                return True
            cur.execute(f'CREATE DATABASE "{name}"')
            return False
    finally:
        conn.close()


def database_drop(url: str) -> None:
    name = _db_name(url)
    conn = _admin_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


# --- seeding --------------------------------------------------------------------------------


def seed(rows: int, *, seed_value: int = 20240601) -> None:
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction

    from marketplace.models import Dataset, Tag, User

    rng = random.Random(seed_value)
    with connection.cursor() as cur:
        cur.execute("TRUNCATE marketplace_dataset, marketplace_dataset_tags, marketplace_tag RESTART IDENTITY CASCADE")
    unusable = make_password(None)
    User.objects.bulk_create(
        [User(username=f"bench-provider-{i:03d}", password=unusable, organisation=f"Provider {i}") for i in range(200)],
        ignore_conflicts=True,
    )
    owner_ids = list(User.objects.filter(username__startswith="bench-provider-").values_list("pk", flat=True))

    tag_names = sorted({t for spec in DOMAINS.values() for t in spec["tags"]} | set(GENERIC_TAGS))
    Tag.objects.bulk_create([Tag(name=n) for n in tag_names])
    tag_id = dict(Tag.objects.values_list("name", "id"))
    through = Dataset.tags.through
    domains = list(DOMAINS)
    now = dt.datetime.now(dt.UTC)
    span = 2 * 365 * 24 * 3600

    created_field = Dataset._meta.get_field("created_at")
    updated_field = Dataset._meta.get_field("updated_at")
    saved = created_field.auto_now_add, updated_field.auto_now
    created_field.auto_now_add = updated_field.auto_now = False  # keep the spread-out timestamps
    try:
        done = 0
        while done < rows:
            n = min(BATCH, rows - done)
            objs, obj_tags = [], []
            for i in range(done, done + n):
                title, description, tags = listing_text(rng, rng.choice(domains))
                created = now - dt.timedelta(seconds=rng.randrange(span))
                status = "listed" if rng.random() < 0.9 else rng.choice(OTHER_STATUSES)
                price = Decimal("0") if rng.random() < 0.25 else Decimal(f"{round(10 ** rng.uniform(0, 2.7), 2)}")
                size = rng.randint(10_000, 2_000_000_000)
                objs.append(
                    Dataset(
                        owner_id=rng.choice(owner_ids),
                        title=title,
                        description=description,
                        licence=rng.choice(LICENCES),
                        price=price,
                        price_token="USDC",
                        epsilon_total=Decimal("10"),
                        epsilon_per_job=Decimal("1"),
                        delta=1e-6,
                        status=status,
                        listed_at=created + dt.timedelta(hours=rng.randint(1, 72))
                        if status in ("listed", "delisted")
                        else None,
                        file_format="csv" if rng.random() < 0.8 else "parquet",
                        original_filename=f"dataset_{i}.csv",
                        storage_name=f"private/bench-{i:08d}.enc",
                        file_size=size,
                        file_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                        validation="valid",
                        validation_progress=100,
                        row_count=size // 120,
                        proposed_schema={},
                        created_at=created,
                        updated_at=created,
                    )
                )
                obj_tags.append(tags)
            with transaction.atomic():
                created_objs = Dataset.objects.bulk_create(objs)
                through.objects.bulk_create(
                    [
                        through(dataset_id=obj.pk, tag_id=tag_id[name])
                        for obj, names in zip(created_objs, obj_tags, strict=True)
                        for name in names
                    ]
                )
            done += n
    finally:
        created_field.auto_now_add, updated_field.auto_now = saved
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE marketplace_dataset")
        cur.execute("VACUUM ANALYZE marketplace_dataset_tags")
        cur.execute("VACUUM ANALYZE marketplace_datasetsearch")  # filled by triggers (migration 0004)
        cur.execute("ANALYZE marketplace_tag")
        cur.execute("ANALYZE marketplace_user")


# --- measuring ------------------------------------------------------------------------------


def run_queries(requests: int, warmup: int, dump: Path | None) -> None:
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    all_times: list[float] = []
    results = {}
    for label, qs in QUERIES:
        url = f"/api/v1/datasets/?{qs}"
        for _ in range(max(1, warmup)):
            resp = client.get(url)
        if resp.status_code != 200:
            raise RuntimeError(f"{url} answered {resp.status_code}: {resp.content[:300]!r}")
        body = resp.json()
        results[label] = {"count": body["count"], "ids": [d["id"] for d in body["results"]]}
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            resp = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            if resp.status_code != 200:
                raise RuntimeError(f"{url} answered {resp.status_code}")
        all_times.extend(times)
        p50, p95 = percentile(times, 50), percentile(times, 95)
        report(f"search p50 ({label})", p50, "ms")
        report(
            f"search p95 ({label})",
            p95,
            "ms",
            target=f"<= {TARGET_P95_MS:.0f} ms",
            ok=p95 <= TARGET_P95_MS,
            anchor=f"{body['count']:,} matches",
        )
    overall = percentile(all_times, 95)
    report(
        "search p95 (all queries)",
        overall,
        "ms",
        target=f"<= {TARGET_P95_MS:.0f} ms",
        ok=overall <= TARGET_P95_MS,
        anchor=f"{len(all_times)} requests",
    )
    connection.close()
    if dump:
        dump.write_text(json.dumps(results, indent=1))


def main() -> int:
    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers.base")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="datasets to seed (default 100000)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per query first")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--dump-results", type=Path, help="write each query's count and first-page ids here")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    existed = database_ensure(url)
    data_dir = None
    try:
        data_dir = setup_django(database_url=url, prefix="ppdx-bench-search-")
        from django.core.management import call_command

        from marketplace.models import Dataset

        call_command("migrate", verbosity=0, interactive=False)
        if existed and Dataset.objects.count() == args.rows:
            print(f"seeding: skipped (reusing the kept database with {args.rows:,} datasets)")
        else:
            t0 = time.perf_counter()
            seed(args.rows)
            seconds = time.perf_counter() - t0
            listed = Dataset.objects.filter(status="listed").count()
            report(
                f"seeding time ({args.rows:,} datasets, {listed:,} listed, incl. tags and ANALYZE)",
                seconds,
                "s",
                anchor=f"{args.rows / seconds:,.0f} rows/s",
            )
        run_queries(args.requests, args.warmup, args.dump_results)
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            database_drop(url)
        remove_tree(data_dir)


if __name__ == "__main__":
    sys.exit(main())
