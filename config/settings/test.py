"""Settings for pytest. DATABASE_URL selects the database (CI: PostgreSQL)."""

import base64
import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import DATABASES, REST_FRAMEWORK, STORAGES, env

_data_dir = Path(env("MARKETPLACE_TEST_DATA_DIR") or tempfile.mkdtemp(prefix="ppdx-test-"))
DATA_DIR = _data_dir
SECRET_KEY = "test-secret-key-not-for-production-0123456789abcdef"
DATASET_ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode()
WALLET_ENCRYPTION_KEY = base64.b64encode(b"w" * 32).decode()
CHAIN_RPC_URL = ""  # chain tests start their own anvil and set it
if _chain_rpc_url := env("CELERY_INTEGRATION_CHAIN_RPC_URL"):
    # A real worker started by a chain test: the test's anvil and deployment (set together with the URL).
    CHAIN_RPC_URL = _chain_rpc_url
    CHAIN_DEPLOYMENT_FILE = env("CELERY_INTEGRATION_CHAIN_DEPLOYMENT_FILE", "")
    CHAIN_OPERATOR_KEY = env("CELERY_INTEGRATION_CHAIN_OPERATOR_KEY", "")
CHAIN_CONFIRMATIONS = 1
CHAIN_RECEIPT_POLL_SECONDS = 0.05
CATALOGUE_COUNT_CACHE_SECONDS = 0  # tests change the catalogue between identical queries
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(_data_dir / "media")},
    },
    "datasets": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(_data_dir / "storage"), "base_url": None},
    },
    "results": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(_data_dir / "results"), "base_url": None},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so a Celery worker process started by a test sees the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(_data_dir / "test.sqlite3")}
elif not env("CELERY_INTEGRATION_BROKER_DIR"):
    # One test database per pytest run, so two runs on one server (two checkouts, CI beside a
    # developer) never drop each other's database. Worker processes a test starts are handed
    # the database's real name in DATABASE_URL, so they do not take this branch.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DATABASES["default"]["CONN_MAX_AGE"] = 0
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"anon": "10000/min", "user": "10000/min", "preview": "10000/min"},
}
CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT = None
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# A real worker started by an integration test: the embedded SQLite broker of `make run` (a file in
# that folder, shared with the test process) and file-based e-mail.
if _broker_dir := env("CELERY_INTEGRATION_BROKER_DIR"):
    from devtools.broker import broker_settings

    CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT, CELERY_BROKER_TRANSPORT_OPTIONS = broker_settings(Path(_broker_dir))
    CELERY_TASK_ALWAYS_EAGER = False
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = env("CELERY_INTEGRATION_MAIL_DIR")
MODERATION_NOTIFY_EMAILS = ["moderators@example.org"]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
WEBHOOK_ALLOW_PRIVATE_HOSTS = True  # tests receive webhooks on loopback
