"""Shared helpers for the benchmark scripts: Django setup against a throw-away data directory,
percentiles, and the ``<metric>: <value> <unit> (target ...)`` report lines."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def setup_django(*, database_url: str | None, prefix: str = "ppdx-bench-", data_dir: Path | None = None) -> Path:
    """Configure Django (local settings) with a temporary MARKETPLACE_DATA_DIR (``data_dir``, or
    a new one) and the given database (None: SQLite in the data directory), and return the data
    directory; the caller removes it with ``remove_tree``.

    Must run before anything imports Django models."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["MARKETPLACE_DATA_DIR"] = str(data_dir)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    # Production-like request handling: no query log kept by DEBUG, no throttling in the way of
    # a few hundred requests a minute from one client, quiet logs.
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["API_THROTTLE_ANON"] = "1000000/min"
    os.environ["API_THROTTLE_USER"] = "1000000/min"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Never touch the developer's keys: local settings generate fresh ones in data_dir.
    os.environ.pop("DATASET_ENCRYPTION_KEY", None)
    os.environ.pop("DJANGO_SECRET_KEY", None)
    os.environ.pop("DATASET_STORAGE_BACKEND", None)

    import django

    django.setup()
    return data_dir


def remove_tree(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def report(
    metric: str,
    value: float,
    unit: str,
    *,
    target: str | None = None,
    ok: bool | None = None,
    anchor: str | None = None,
    fmt: str = "{:.1f}",
) -> None:
    """Print one figure: ``metric: value unit (target ...; anchor ...)``, with MISSED beside a
    missed target."""
    notes = []
    if target:
        notes.append(f"target {target}")
    if anchor:
        notes.append(f"anchor {anchor}")
    line = f"{metric}: {fmt.format(value)} {unit}".rstrip()
    if notes:
        line += f" ({'; '.join(notes)})"
    if ok is False:
        line += " MISSED"
    print(line, flush=True)
