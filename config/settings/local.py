"""Embedded defaults for ``make run``: SQLite, a SQLite Celery broker (devtools.broker), generated secrets."""

from .base import *  # noqa: F403
from .base import DATA_DIR, env, env_bool, persistent_secret

DEBUG = env_bool("DJANGO_DEBUG", True)
DATA_DIR.mkdir(parents=True, exist_ok=True)
SECRET_KEY = env("DJANGO_SECRET_KEY") or persistent_secret("django_secret_key", nbytes=48)
DATASET_ENCRYPTION_KEY = env("DATASET_ENCRYPTION_KEY") or persistent_secret("dataset_encryption_key")
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
WALLET_ENCRYPTION_KEY = env("WALLET_ENCRYPTION_KEY") or persistent_secret("wallet_encryption_key")
WEBHOOK_ALLOW_PRIVATE_HOSTS = env_bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", True)  # make run: receivers on localhost
