"""Production: every secret from the environment, https only, PostgreSQL expected.

``DJANGO_SETTINGS_MODULE=config.settings.production manage.py check --deploy`` passes with no
warning once the environment below is set (tests/config/settings/test_production_deploy.py runs it)."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import COMPUTE_SANDBOX_BACKEND, TRUST_PROXY, env, env_bool, env_int

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
# The unsandboxed backend gives a buyer's job the host's files and network: never in production.
if COMPUTE_SANDBOX_BACKEND != "bubblewrap":
    raise ImproperlyConfigured(
        f"COMPUTE_SANDBOX_BACKEND={COMPUTE_SANDBOX_BACKEND!r}: production runs compute jobs in bubblewrap only."
    )
# Hostile code needs the kernel's limits (per-job cgroup and uid, tmpfs workspaces): no rlimits-only fallback.
COMPUTE_SANDBOX_REQUIRE_ROOT_MODE = True

# --- https: cookies, redirect, HSTS ---
# DJANGO_SECURE_COOKIES=false and DJANGO_SSL_REDIRECT=false only to try the stack over plain http.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
# Load balancers and container health checks call over plain http from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
# One year by default; browsers then refuse plain http to this host for that long.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading is a promise to the browser vendors that is slow to undo: the operator opts in
    # (DJANGO_HSTS_PRELOAD=true); not opting in is a choice, not a misconfiguration.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Reverse proxy: X-Forwarded-Proto (and X-Forwarded-For, for log-in throttling) is a header any
# client can send, so it is believed only when DJANGO_TRUST_PROXY says a proxy in front sets it. ---
if TRUST_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
