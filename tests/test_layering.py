"""The import rules of docs/architecture.md, read from the source with ``ast`` (imports inside
functions count, since a lazy import is still a dependency and still closes a circle).

- Tasks import services, never the other way round: a ``services``, ``receivers`` or ``selectors``
  module queues work by task name through ``common.tasks.enqueue``.
- The base packages (``common``, then ``marketplace``) import nothing from the apps above them.
- ``common`` imports no project app at all."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "chain",
    "common",
    "compute_to_data",
    "config",
    "devtools",
    "frontend",
    "integrations",
    "marketplace",
    "marketplace_client",
)
UPPER_APPS = {"chain", "compute_to_data", "integrations", "frontend", "devtools"}
PROJECT_APPS = UPPER_APPS | {"marketplace", "config", "marketplace_client"}

# marketplace's remaining reach into compute_to_data (issue 14), as (module, app it imports):
# each entry must go, never grow.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports(module: str, path: Path, known: frozenset[str] = frozenset()) -> set[str]:
    """Every module ``module`` imports, anywhere in its body; ``from a import b`` counts as
    ``a.b`` too, because ``b`` may be a module (``from marketplace import tasks``). When every name
    imported that way is a module of ``known``, the package ``a`` itself is not counted: like
    ``import a.b``, it loads ``a`` but uses nothing from it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            names.update(submodules)
            if not submodules <= known:
                names.add(base)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = frozenset(modules)
    return {module: _imports(module, path, known) for module, path in modules.items()}


def _is_tasks(name: str) -> bool:
    return name.split(".")[-1] == "tasks" and name.split(".")[0] in PROJECT_APPS and name != "common.tasks"


def _role(module: str) -> str | None:
    parts = set(module.split("."))
    return next((role for role in ("services", "receivers", "selectors") if role in parts), None)


def test_services_receivers_and_selectors_never_import_a_tasks_module():
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in _graph().items()
        if _role(module)
        for name in names
        if _is_tasks(name)
    )
    assert offenders == [], "queue the task by name with common.tasks.enqueue instead:\n" + "\n".join(offenders)


def test_the_base_packages_import_nothing_from_the_apps_above_them():
    upward = {
        (module, name.split(".")[0])
        for module, names in _graph().items()
        if module.split(".")[0] in {"marketplace", "common"}
        for name in names
        if name.split(".")[0] in UPPER_APPS
    }
    new = sorted(upward - KNOWN_UPWARD)
    assert new == [], "the base app must not reach up (use a signal or a registry):\n" + "\n".join(
        f"{m} imports from {n}" for m, n in new
    )
    gone = sorted(KNOWN_UPWARD - upward)
    assert gone == [], f"remove these from KNOWN_UPWARD, they are fixed: {gone}"


# Which apps each app may import (docs/architecture.md draws it); config wires them all together.
MAY_IMPORT = {
    "common": set(),
    "marketplace": {"common"},
    "chain": {"common", "marketplace"},
    "compute_to_data": {"common", "marketplace", "chain"},
    "integrations": {"common", "marketplace", "chain", "compute_to_data"},
    "frontend": {"common", "marketplace", "chain", "compute_to_data", "integrations"},
    "devtools": {"common", "marketplace", "chain", "compute_to_data", "config"},
    "marketplace_client": set(),
}


def test_apps_import_only_the_apps_below_them():
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in _graph().items()
        if module.split(".")[0] in MAY_IMPORT
        for name in names
        if name.split(".")[0] in PROJECT_APPS | {"common"}
        and name.split(".")[0] != module.split(".")[0]
        and name.split(".")[0] not in MAY_IMPORT[module.split(".")[0]]
    )
    assert offenders == [], "\n".join(offenders)


def test_common_imports_no_project_app():
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in _graph().items()
        if module.split(".")[0] == "common"
        for name in names
        if name.split(".")[0] in PROJECT_APPS
    )
    assert offenders == [], "\n".join(offenders)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    # The rules above are only as good as the parser: a lazy import must count.
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from marketplace import tasks\n    from .x import y\n")
    names = _imports("chain.services.mod", source)
    assert "marketplace.tasks" in names and _is_tasks("marketplace.tasks")
    assert "chain.services.x.y" in names


def test_no_import_circle_between_project_modules():
    assert import_cycles() == [], "python -m tests.test_layering lists them"


def test_the_cycle_finder_finds_a_circle_through_a_lazy_import(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from c import x\n")
    (tmp_path / "c.py").write_text("from a import y\n")
    monkeypatch.setattr(sys.modules[__name__], "_graph", lambda: {m: _imports(m, tmp_path / f"{m}.py") for m in "abc"})
    assert import_cycles() == [["a", "b", "c"]]


def test_the_upload_checks_read_cells_with_the_runner_the_compute_app_registered():
    # schema.py no longer imports the runner; compute_to_data registers it, and the BOM schema.py
    # strips (codecs.BOM_UTF8) is the one the runner strips.
    import codecs

    from compute_to_data.runner import params, preprocess
    from marketplace.services import schema

    assert schema._runner_preprocess() == (preprocess, params)
    assert codecs.BOM_UTF8 == preprocess.UTF8_BOM


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of project modules (Tarjan): each is an import circle."""
    graph = _graph()
    edges = {m: {n for n in names if n in graph and n != m} for m, names in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(groups)


if __name__ == "__main__":  # python -m tests.test_layering: the remaining import circles
    by_size = defaultdict(list)
    for group in import_cycles():
        by_size[len(group)].append(group)
    for size in sorted(by_size):
        for group in by_size[size]:
            print(size, " ".join(group))
