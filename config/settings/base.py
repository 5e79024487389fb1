"""Settings shared by every environment. Values come from the environment; each
integration has its own section. ``local``, ``test`` and ``production`` refine them."""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import overload

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


@overload
def env(name: str) -> str | None: ...
@overload
def env(name: str, default: str) -> str: ...
def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (os.environ.get(name) or default).split(",") if item.strip()]


# --- Local state: where the embedded defaults keep their files (database, storage, broker) ---
DATA_DIR = Path(env("MARKETPLACE_DATA_DIR", str(BASE_DIR / ".local")))


def persistent_secret(name: str, *, nbytes: int = 32) -> str:
    """A random secret kept in DATA_DIR so embedded runs survive restarts. Never used in production."""
    path = DATA_DIR / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = base64.b64encode(secrets.token_bytes(nbytes)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


# --- Core Django ---
SECRET_KEY = env("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Log-in throttling (failed attempts in the database, shared by every process) and the CSP header.
    "axes",
    "csp",
    "marketplace",
    "compute_to_data",
    "chain",
    "integrations",
    "frontend",
    # Dev-only commands (run_embedded, seed_demo); no production code imports it.
    "devtools",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # A JSON body nested past 64 levels is a 400 before any parser recurses into it.
    "marketplace.middleware.JSONDepthMiddleware",
    # Before CSRF: turns an oversize upload found while parsing the body into a 413.
    "marketplace.middleware.DomainErrorMiddleware",
    # A statement cancelled by the web's statement_timeout is a 503 with a reason, not a 500.
    "marketplace.middleware.QueryTimeoutMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out log-in into the lockout page or JSON 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "marketplace.User"
LOGIN_URL = "frontend:login"
LOGIN_REDIRECT_URL = "frontend:catalogue"
LOGOUT_REDIRECT_URL = "frontend:catalogue"
# django-axes first: it refuses a locked-out account or address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Accounts: log-in throttling (django-axes), e-mail links, proxies ---
# Failed password log-ins (web form and POST /api/v1/auth/token/) are counted per account and,
# separately, per client address, in the database, so every gunicorn worker and host sees them.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Not reset by a success: that would also clear the address's count, so one account of one's own
# would let an address guess at other accounts without end.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "marketplace.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "marketplace.lockout.client_ip"
AXES_USERNAME_CALLABLE = "marketplace.lockout.client_username"
# Behind a reverse proxy that sets X-Forwarded-Proto and X-Forwarded-For (and strips any a client
# sent): only then are those headers believed, for https and for the address log-ins count against.
TRUST_PROXY = env_bool("DJANGO_TRUST_PROXY", False)
# Links in password-reset and e-mail verification messages stay valid this long.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT_SECONDS", 3 * 24 * 3600)

# --- Content-Security-Policy (django-csp): scripts and styles from our own static files only.
# Inline style attributes stay allowed (progress bars set their width with them); inline scripts
# and event-handler attributes do not. ---
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Database: SQLite file by default, PostgreSQL (or any) via DATABASE_URL ---
DATABASES = {
    "default": dj_database_url.parse(env("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}", conn_max_age=60)
}
# A kept connection the database dropped (restart, failover) is found before a request uses it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The web server and two worker processes write at once: take the write lock when a transaction
    # starts (no failed lock upgrades), and wait for it rather than fail with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
# PostgreSQL cancels a web request's statement that runs longer than this (0: never), so one
# costly query cannot hold a worker and a connection; the request gets a 503 (code
# query_timeout). Only the web server's connections (config/wsgi.py, config/asgi.py): Celery
# workers, migrations and management commands run without it.
DATABASE_STATEMENT_TIMEOUT_MS = env_int("DATABASE_STATEMENT_TIMEOUT_MS", 5000)

# --- Static files: served by whitenoise, no CDN anywhere ---
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Browser libraries installed by `npm ci` (package.json), served as our own static files.
STATICFILES_DIRS = [("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist")]

# --- Storage: dataset files (encrypted) and mock files go through the "datasets" storage alias.
# Set DATASET_STORAGE_BACKEND=storages.backends.s3.S3Storage (and AWS_* variables) for S3. ---
DATASET_STORAGE_BACKEND = env("DATASET_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
_dataset_storage_options: dict[str, object] = {}
if DATASET_STORAGE_BACKEND.endswith("FileSystemStorage"):
    # No base_url: nothing under this folder is ever served by URL.
    _dataset_storage_options = {"location": str(DATA_DIR / "storage"), "base_url": None}
else:
    _dataset_storage_options = {
        "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
        "endpoint_url": env("AWS_S3_ENDPOINT_URL"),
        "default_acl": "private",
        "querystring_auth": True,
    }
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "media")},
    },
    "datasets": {"BACKEND": DATASET_STORAGE_BACKEND, "OPTIONS": _dataset_storage_options},
    # Released job outputs (DP results only): same backend, their own folder (or S3 prefix).
    "results": {
        "BACKEND": DATASET_STORAGE_BACKEND,
        "OPTIONS": (
            {"location": str(DATA_DIR / "results"), "base_url": None}
            if DATASET_STORAGE_BACKEND.endswith("FileSystemStorage")
            else {**_dataset_storage_options, "location": "results"}
        ),
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Datasets: encryption at rest, upload limits, schema sampling ---
# 32 bytes, base64. Required in production; local runs keep a generated one in DATA_DIR.
DATASET_ENCRYPTION_KEY = env("DATASET_ENCRYPTION_KEY", "")
DATASET_MAX_UPLOAD_BYTES = env_int("DATASET_MAX_UPLOAD_BYTES", 1024**3)
DATASET_MAX_MOCK_UPLOAD_BYTES = env_int("DATASET_MAX_MOCK_UPLOAD_BYTES", 20 * 1024**2)
DATASET_ENCRYPTION_CHUNK_BYTES = env_int("DATASET_ENCRYPTION_CHUNK_BYTES", 1024**2)
DATASET_SCHEMA_SAMPLE_BYTES = env_int("DATASET_SCHEMA_SAMPLE_BYTES", 2 * 1024**2)
DATASET_SCHEMA_SAMPLE_ROWS = env_int("DATASET_SCHEMA_SAMPLE_ROWS", 10_000)
# Refused as the upload arrives: a CSV header line longer than this, or more columns than the
# schema allows (a Parquet file's columns count too).
DATASET_MAX_HEADER_BYTES = env_int("DATASET_MAX_HEADER_BYTES", 256 * 1024)
DATASET_MAX_COLUMNS = env_int("DATASET_MAX_COLUMNS", 500)
# Parquet is compressed: its data uncompressed (from the footer, before any is read) may be at
# most this, and one row group at most DATASET_MAX_ROW_GROUP_BYTES (read whole while checking).
DATASET_MAX_UNCOMPRESSED_BYTES = env_int("DATASET_MAX_UNCOMPRESSED_BYTES", 8 * 1024**3)
DATASET_MAX_ROW_GROUP_BYTES = env_int("DATASET_MAX_ROW_GROUP_BYTES", 512 * 1024**2)
# Uploads are parsed only in a child process under these limits (address space beyond what the
# parent has mapped, CPU, wall clock): the sample read while the upload request waits, the full
# check on the worker. A file that needs more fails with a message naming the limit.
DATASET_SAMPLE_MEMORY_BYTES = env_int("DATASET_SAMPLE_MEMORY_BYTES", 1024**3)
DATASET_SAMPLE_SECONDS = env_int("DATASET_SAMPLE_SECONDS", 60)
DATASET_VALIDATION_MEMORY_BYTES = env_int("DATASET_VALIDATION_MEMORY_BYTES", 3 * 1024**3)
DATASET_VALIDATION_SECONDS = env_int("DATASET_VALIDATION_SECONDS", 25 * 60)  # below CELERY_TASK_SOFT_TIME_LIMIT
# Catalogue totals (page counts) are cached this long; 0 counts on every request.
CATALOGUE_COUNT_CACHE_SECONDS = env_int("CATALOGUE_COUNT_CACHE_SECONDS", 30)
# Catalogue list pages kept per web process, served while the catalogue is unchanged (PostgreSQL;
# see marketplace/api/catalogue_cache.py). 0 turns it off.
CATALOGUE_PAGE_CACHE_SIZE = env_int("CATALOGUE_PAGE_CACHE_SIZE", 512)
DATASET_MOCK_MAX_ROWS = env_int("DATASET_MOCK_MAX_ROWS", 10_000)
# Uploads are parsed by handlers that keep plaintext off disk and stop at the size limit.
FILE_UPLOAD_HANDLERS = ["marketplace.uploads.EncryptedTemporaryFileUploadHandler"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# The schema form sends up to 7 fields per column and a schema may have 500 columns.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 4000

# --- REST API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.StandardPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", "120/min"),
        "user": env("API_THROTTLE_USER", "600/min"),
        # Free preview runs start a training process each: a few per user and minute.
        "preview": env("API_THROTTLE_PREVIEW", "6/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.errors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Privacy-preserving data exchange API",
    "DESCRIPTION": (
        "Publish datasets, declare their schema, moderate listings and search the catalogue. "
        "Errors are JSON objects with a stable `code` and a human `detail`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "DatasetStatusEnum": "marketplace.models.Dataset.Status",
        "ReportStatusEnum": "marketplace.models.Report.Status",
    },
}

# --- Celery: server-less SQLite broker by default (devtools/broker.py), Redis/RabbitMQ via CELERY_BROKER_URL
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "")
CELERY_BROKER_TRANSPORT: str | None = None
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if not CELERY_BROKER_URL:
    # A message is a committed SQLite row: never read half-written (the filesystem transport's was).
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = f"sqlite:///{DATA_DIR / 'broker.sqlite3'}"
    CELERY_BROKER_TRANSPORT = "devtools.broker:Transport"
    # How often a worker looks for new messages: part of every job's start-up latency.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.05}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 30 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 35 * 60)
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Queues the workers of this project consume; docker/compose.yml is checked against it.
CELERY_TASK_QUEUES_DECLARED = ["celery", "compute"]
CELERY_BEAT_SCHEDULE = {
    "chain-indexer": {
        "task": "chain.tasks.indexer_run_task",
        "schedule": float(env("CHAIN_INDEXER_INTERVAL_SECONDS", "5")),
    },
    "chain-transactions-resume": {
        "task": "chain.tasks.transactions_resume_task",
        "schedule": 60.0,
    },
    "storage-orphans-sweep": {
        "task": "marketplace.tasks.storage_orphans_sweep_task",
        "schedule": 3600.0,
    },
    "validations-resume": {
        "task": "marketplace.tasks.validations_resume_task",
        "schedule": 300.0,
    },
}

# --- Compute-to-data: each job runs the trusted DP runner in a fresh bubblewrap sandbox ---
# Per-job private folders (decrypted dataset, outputs); must be traversable by the sandbox uid.
COMPUTE_WORK_DIR = env("COMPUTE_WORK_DIR", str(Path(tempfile.gettempdir()) / "marketplace-compute"))
# The trusted runner package, bound read-only into every sandbox.
COMPUTE_RUNNER_DIR = env("COMPUTE_RUNNER_DIR", str(BASE_DIR / "compute_to_data" / "runner"))
# How jobs are launched: "bubblewrap" (the sandbox; the only one production accepts) or
# "unsandboxed" (straight on the host, for tests and benchmarks only).
COMPUTE_SANDBOX_BACKEND = env("COMPUTE_SANDBOX_BACKEND", "bubblewrap")
# Interpreter inside the sandbox (readable by the sandbox uid); empty: found automatically.
COMPUTE_SANDBOX_PYTHON = env("COMPUTE_SANDBOX_PYTHON", "")
# Root mode (the worker as root): each running job gets a uid/gid of its own from this pool (no account may use
# it, nor 65534), leased host-wide with a lock file per uid in the lease folder.
COMPUTE_SANDBOX_UID_BASE = env_int("COMPUTE_SANDBOX_UID_BASE", 620_000)
COMPUTE_SANDBOX_UID_COUNT = env_int("COMPUTE_SANDBOX_UID_COUNT", 64)
COMPUTE_SANDBOX_LEASE_DIR = env("COMPUTE_SANDBOX_LEASE_DIR", "/run/lock/marketplace-sandbox")
# Root-only folder a workspace that could not be removed is moved to; empty: .quarantine in COMPUTE_WORK_DIR.
COMPUTE_SANDBOX_QUARANTINE_DIR = env("COMPUTE_SANDBOX_QUARANTINE_DIR", "")
# Refuse jobs unless the worker runs in root mode (per-job cgroup, uid pool, tmpfs workspaces).
COMPUTE_SANDBOX_REQUIRE_ROOT_MODE = env_bool("COMPUTE_SANDBOX_REQUIRE_ROOT_MODE", False)
COMPUTE_THREADS = env_int("COMPUTE_THREADS", 2)
# Limits of one job's sandbox.
COMPUTE_MEMORY_MB = env_int("COMPUTE_MEMORY_MB", 4096)
COMPUTE_CPU_SECONDS = env_int("COMPUTE_CPU_SECONDS", 3600)
COMPUTE_WALL_SECONDS = env_int("COMPUTE_WALL_SECONDS", 1800)
COMPUTE_FILE_SIZE_MB = env_int("COMPUTE_FILE_SIZE_MB", 256)
COMPUTE_DISK_MB = env_int("COMPUTE_DISK_MB", 512)
COMPUTE_PROCESSES = env_int("COMPUTE_PROCESSES", 64)
COMPUTE_OPEN_FILES = env_int("COMPUTE_OPEN_FILES", 256)
# A running job's worker writes a heartbeat this often; the reaper acts on one older than the timeout.
COMPUTE_HEARTBEAT_SECONDS = float(env("COMPUTE_HEARTBEAT_SECONDS", "2"))
COMPUTE_HEARTBEAT_TIMEOUT_SECONDS = float(env("COMPUTE_HEARTBEAT_TIMEOUT_SECONDS", "60"))
# How often a job whose worker died before touching data is tried again.
COMPUTE_MAX_ATTEMPTS = env_int("COMPUTE_MAX_ATTEMPTS", 3)
CELERY_TASK_ROUTES = {"compute_to_data.tasks.job_run_task": {"queue": "compute"}}
CELERY_BEAT_SCHEDULE["compute-jobs-reap"] = {"task": "compute_to_data.tasks.jobs_reap_task", "schedule": 15.0}

# Public base URL of the site (data NFT metadata URIs, SIWE domain and URI in e-mails).
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")

# --- Chain: EVM node, deployment file, operator key; the embedded launcher fills these for anvil ---
# JSON-RPC endpoint of the node. Empty: the chain is not configured (the Web2 half still works).
CHAIN_RPC_URL = env("CHAIN_RPC_URL", "")
# RPC URL browser wallets may add the chain with (GET /api/v1/chain/); empty: CHAIN_RPC_URL on dev chains only.
CHAIN_PUBLIC_RPC_URL = env("CHAIN_PUBLIC_RPC_URL", "")
# Chain id the node must report; 0 accepts whatever the deployment file lists for the node's id.
CHAIN_ID = env_int("CHAIN_ID", 0)
# Contract addresses per chain id, written by `manage.py chain_deploy` (and the embedded launcher).
CHAIN_DEPLOYMENT_FILE = env("CHAIN_DEPLOYMENT_FILE", str(DATA_DIR / "chain" / "deployments.json"))
# Hex private key of the marketplace operator (receipts, refunds, the ordering flag). Secret.
CHAIN_OPERATOR_KEY = env("CHAIN_OPERATOR_KEY", "")
# Contracts v2 (fixed at deployment, `manage.py chain_deploy` and the embedded chain): how long an
# order stays settleable by the operator before its buyer may reclaim it, and how long an operator
# or fee change waits before anyone may apply it (factory bounds: window 1 hour..365 days, delay 1..30 days).
CHAIN_ORDER_WINDOW_SECONDS = env_int("CHAIN_ORDER_WINDOW_SECONDS", 7 * 24 * 3600)
CHAIN_PARAMETER_DELAY_SECONDS = env_int("CHAIN_PARAMETER_DELAY_SECONDS", 2 * 24 * 3600)
# How long an operator-signed order ticket (issued by the quote and the job API) may wait to be mined.
CHAIN_TICKET_LIFETIME_SECONDS = env_int("CHAIN_TICKET_LIFETIME_SECONDS", 30 * 60)
# Blocks an order or an event must be buried under before the marketplace trusts it.
CHAIN_CONFIRMATIONS = env_int("CHAIN_CONFIRMATIONS", 2)
# Largest block range one indexer query covers.
CHAIN_INDEXER_BATCH_BLOCKS = env_int("CHAIN_INDEXER_BATCH_BLOCKS", 2000)
# Seconds between polls of a sent transaction's receipt, and how many polls before giving up.
CHAIN_RECEIPT_POLL_SECONDS = float(env("CHAIN_RECEIPT_POLL_SECONDS", "1.0"))
CHAIN_RECEIPT_MAX_POLLS = env_int("CHAIN_RECEIPT_MAX_POLLS", 600)
# Seconds an EIP-4361 (Sign-In with Ethereum) nonce stays valid.
SIWE_NONCE_TTL_SECONDS = env_int("SIWE_NONCE_TTL_SECONDS", 600)
# Clock difference between web servers tolerated on a message's issued-at and not-before times.
SIWE_CLOCK_SKEW_SECONDS = env_int("SIWE_CLOCK_SKEW_SECONDS", 5)
# 32 bytes, base64: encrypts managed wallets' private keys at rest. Required in production.
WALLET_ENCRYPTION_KEY = env("WALLET_ENCRYPTION_KEY", "")

# --- Integrations: webhooks may reach loopback/private hosts only when allowed (local and test do) ---
WEBHOOK_ALLOW_PRIVATE_HOSTS = env_bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", False)
CELERY_BEAT_SCHEDULE["webhooks-resume"] = {"task": "integrations.tasks.webhook_deliveries_resume_task", "schedule": 60}

# --- E-mail: console by default ---
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "marketplace@localhost")
# For EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend (password resets, confirmations).
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
MODERATION_NOTIFY_EMAILS = env_list("MODERATION_NOTIFY_EMAILS")

# --- Logging ---
# Who is mailed every CRITICAL log line (a job's workspace that could not be removed and was
# quarantined, a run's processes that could not be killed): Django's ADMINS, through its
# AdminEmailHandler. Empty: the line is only logged.
OPERATOR_ALERT_EMAILS = env_list("OPERATOR_ALERT_EMAILS")
ADMINS = [(address, address) for address in OPERATOR_ALERT_EMAILS]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "operators": {"class": "django.utils.log.AdminEmailHandler", "level": "CRITICAL"},
    },
    "root": {"handlers": ["console", "operators"], "level": env("LOG_LEVEL", "INFO")},
    # django-axes logs every log-in at INFO; lockouts (WARNING) still show.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
