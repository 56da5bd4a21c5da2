"""The page views only parse the request, call selectors and services, and render.

Reads live in ``sessions.selectors`` (a module per page), query strings in ``sessions.forms``: a view
that reaches for the ORM itself would escape the pages' query bounds and the selectors' tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SESSIONS = Path(__file__).resolve().parents[1]
VIEW_MODULES = ["views.py", "views_operate.py", "views_discussion.py"]


@pytest.mark.parametrize("name", VIEW_MODULES)
def test_views_do_not_query_the_database(name: str) -> None:
    tree = ast.parse((SESSIONS / name).read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "objects":
            found.append(f"line {node.lineno}: .objects")
        if isinstance(node, ast.Name) and node.id in ("get_object_or_404", "get_list_or_404"):
            found.append(f"line {node.lineno}: {node.id}")
        if isinstance(node, ast.ImportFrom) and node.module in ("django.db", "django.db.models"):
            found.append(f"line {node.lineno}: imports {node.module}")
    assert not found, f"{name} reads the database itself (move it into sessions/selectors/): {found}"


def test_the_selectors_package_re_exports_nothing() -> None:
    """Importers name the module that defines what they use: the package's __init__ holds only its docstring."""
    tree = ast.parse((SESSIONS / "selectors" / "__init__.py").read_text())
    assert [type(node).__name__ for node in tree.body] == ["Expr"]
