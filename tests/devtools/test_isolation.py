"""Production code never imports the dev-only ``devtools`` app (imports inside functions count):
only the test and development settings may name it, so an image can run without its machinery
ever being loaded."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("chain", "common", "compute_to_data", "config", "frontend", "integrations", "marketplace")
# Settings that select the SQLite broker of `make run` and the integration tests.
ALLOWED = {Path("config/settings/test.py"), Path("config/settings/local.py")}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_production_module_imports_devtools():
    offenders = []
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative in ALLOWED or "migrations" in relative.parts:
                continue
            hits = sorted(name for name in _imports(path) if name == "devtools" or name.startswith("devtools."))
            if hits:
                offenders.append(f"{relative}: {', '.join(hits)}")
    assert offenders == []


def test_the_moved_modules_are_gone_from_the_production_apps():
    # The dev-only modules have one home; a stale copy left behind would be imported by mistake.
    for stale in ("chain/node.py", "chain/embedded.py", "chain/supervisor.py", "config/embedded_broker.py"):
        assert not (ROOT / stale).exists(), stale
    assert not (ROOT / "marketplace/management/commands/seed_demo.py").exists()
    assert not (ROOT / "chain/management/commands/run_embedded.py").exists()
