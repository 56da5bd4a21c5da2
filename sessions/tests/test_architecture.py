"""The shape of the code, checked: no import cycles, no hidden imports inside functions, small modules.

Read from the source with ``ast`` (nothing is imported), so the test sees what a reader sees.
See docs/ARCHITECTURE.md for the layers these rules keep apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
PACKAGES = ("loopdash", "sessions")
MAX_LINES = 600
# Function-level imports that are there on purpose, with the reason (none breaks a cycle).
ALLOWED_LOCAL_IMPORTS = {
    "sessions.apps:sessions.checks": "AppConfig.ready(): system checks register once the app registry is ready",
    "sessions.apps:sessions.signals": "AppConfig.ready(): the post_migrate receiver registers once the registry is ready",
}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function?) for every import statement of a module."""
    tree = ast.parse(path.read_text(), str(path))
    local_lines = {
        sub.lineno
        for func in ast.walk(tree)
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
        for sub in ast.walk(func)
        if isinstance(sub, ast.Import | ast.ImportFrom)
    }
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, path.name == "__init__.py", node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno, node.lineno in local_lines))
    return found


def test_no_import_cycles_among_the_projects_modules() -> None:
    modules = project_modules()
    graph = {name: {t for t, _line, _local in imports_of(name, path, modules)} for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert cycles == [], f"import cycles: {cycles}"


def test_no_imports_hide_inside_functions() -> None:
    modules = project_modules()
    hidden = [
        f"{name}:{line} imports {target}"
        for name, path in modules.items()
        for target, line, local in imports_of(name, path, modules)
        if local and f"{name}:{target}" not in ALLOWED_LOCAL_IMPORTS
    ]
    assert hidden == [], "function-level imports of project modules (import at the top):\n" + "\n".join(hidden)


def test_no_module_does_several_jobs_in_more_than_600_lines() -> None:
    too_big = {
        str(path.relative_to(ROOT)): n
        for path in project_modules().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert too_big == {}, f"modules over {MAX_LINES} lines: {too_big}"
