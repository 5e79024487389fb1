"""The page code's layout: pages are a package with one module per journey, and no module of
``frontend`` reaches into another's private names (a leading underscore), by import or by
attribute, so a module's helpers can change without breaking another journey's pages."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import frontend

FRONTEND = Path(frontend.__file__).parent
JOURNEYS = {"accounts", "catalogue", "publish", "jobs", "orders", "wallet", "moderation", "dashboard", "ledger"}


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(FRONTEND.parent).with_suffix("").parts): path
        for path in FRONTEND.rglob("*.py")
        if "migrations" not in path.parts
    }


def _private_uses(module: str, tree: ast.AST) -> list[str]:
    """``from frontend.x import _y`` and ``x._y`` where ``x`` is an imported frontend module."""
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("frontend"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if alias.name.startswith("_") and node.module != module:
                    found.append(f"{module} imports {target}")
                aliases[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("frontend"):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            found.append(f"{module} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_frontend_module_uses_another_modules_private_names():
    modules = _modules()
    assert "frontend.views.common" in modules and "frontend.presenters" in modules
    problems = [p for name, path in modules.items() for p in _private_uses(name, ast.parse(path.read_text()))]
    assert problems == []


def test_the_private_name_check_catches_both_forms():
    tree = ast.parse("from frontend.views.jobs import _job_page\nfrom frontend.views import common\ncommon._secret()\n")
    assert _private_uses("frontend.views.wallet", tree) == [
        "frontend.views.wallet imports frontend.views.jobs._job_page",
        "frontend.views.wallet uses frontend.views.common._secret",
    ]


def test_every_page_is_served_by_a_journey_module():
    from frontend.urls import urlpatterns

    owners = {getattr(p.callback, "view_class", p.callback).__module__ for p in urlpatterns}
    assert owners == {f"frontend.views.{name}" for name in JOURNEYS | {"integrations"}}
    assert not (FRONTEND / "views.py").exists()
    root = importlib.import_module("config.urls")
    assert root.handler404.__module__ == root.handler500.__module__ == "frontend.views.errors"
