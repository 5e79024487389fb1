"""What the production-settings tests share: the repository root and an operator's environment."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def deploy_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment an operator gives a production deployment behind https, fresh secrets included."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATASET_", "WALLET_", "CHAIN_"))}
    return {
        **clean,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATASET_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "WALLET_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DJANGO_ALLOWED_HOSTS": "data.example.org,testserver",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://data.example.org",
        "SITE_URL": "https://data.example.org",
        "DATABASE_URL": "postgres://marketplace@db.internal:5432/marketplace",
        "MARKETPLACE_DATA_DIR": str(tmp_path),
        **extra,
    }
