"""Production: every secret from the environment, secure cookies, PostgreSQL expected."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env, env_bool, env_int

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", "")
DATASET_ENCRYPTION_KEY = env("DATASET_ENCRYPTION_KEY", "")
WALLET_ENCRYPTION_KEY = env("WALLET_ENCRYPTION_KEY", "")
for _name, _value in {
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "DATASET_ENCRYPTION_KEY": DATASET_ENCRYPTION_KEY,
    "WALLET_ENCRYPTION_KEY": WALLET_ENCRYPTION_KEY,
}.items():
    if not _value:
        raise ImproperlyConfigured(f"{_name} must be set in the environment in production.")

SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
