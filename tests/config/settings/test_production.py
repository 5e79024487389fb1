import os
import subprocess
import sys

from tests.config.settings.support import ROOT


def run_check(settings_module: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATASET_", "WALLET_"))}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, "DJANGO_SETTINGS_MODULE": settings_module, **env},
        timeout=60,
    )


def test_production_refuses_to_start_without_secrets():
    result = run_check("config.settings.production")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_starts_with_secrets_from_the_environment(tmp_path):
    result = run_check(
        "config.settings.production",
        DJANGO_SECRET_KEY="x" * 50,
        DATASET_ENCRYPTION_KEY="a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=",
        WALLET_ENCRYPTION_KEY="d2FsbGV0d2FsbGV0d2FsbGV0d2FsbGV0d2FsbGV0d2E=",
        MARKETPLACE_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
