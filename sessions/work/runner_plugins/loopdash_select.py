"""A pytest plugin loopdash copies next to a rerun: run only the selected tests.

Stand-alone on purpose (standard library only): it runs inside the suite's own pytest, which knows
nothing of loopdash or Django.

The node ids come from stored test cases, and those come from uploaded files: they are data, never
command-line text. So they are not on pytest's command line at all, where a name starting with
``-`` or ``@``, or holding any of the line separators that argparse's argument files split on
(``\\v \\f \\x1c \\x1d \\x1e \\x85 \\u2028 \\u2029``), could become an option. They arrive as a JSON list
in the file ``LOOPDASH_SELECTION_FILE`` names, and are only ever *compared* with the node ids pytest
collected from the environment's own paths: a name that matches no collected test selects nothing.

Collection is narrowed to the selected files when they all exist under the root (a one-test rerun
then does not import the whole suite); then every collected test that is not selected is
deselected. A selected module or class keeps all its tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_state: dict[str, object] = {}


def _load(config: Any) -> tuple[set[str] | None, set[Path] | None]:  # pytest's Config: no pytest import here
    if "wanted" not in _state:
        if not os.environ.get("LOOPDASH_SELECTION_FILE"):
            _state["wanted"], _state["paths"] = None, None  # collecting a whole suite: no selection
            return None, None
        with open(os.environ["LOOPDASH_SELECTION_FILE"], encoding="utf-8") as handle:
            wanted = {str(n) for n in json.load(handle) if isinstance(n, str) and n}
        root = Path(str(config.rootpath))
        paths: set[Path] | None = set()
        for nodeid in wanted:
            try:
                path = (root / nodeid.partition("::")[0]).resolve()
                exists = path.exists()
            except (OSError, ValueError):
                exists = False
            if not exists:
                paths = None  # ids of another layout: collect everything, deselect below
                break
            paths.add(path)
        _state["wanted"], _state["paths"] = wanted, paths
    return _state["wanted"], _state["paths"]  # type: ignore[return-value]


def pytest_configure(config: Any) -> None:
    _load(config)


def pytest_ignore_collect(collection_path: Path, config: Any) -> bool | None:
    _wanted, paths = _load(config)
    if not paths:
        return None
    path = Path(str(collection_path)).resolve()
    if path.name in ("conftest.py", "__init__.py"):
        return None
    for chosen in paths:
        if path == chosen or chosen in path.parents or path in chosen.parents:
            return None
    return True


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    wanted, _paths = _load(config)
    if wanted is None:
        return
    keep, drop = [], []
    for item in items:
        parts = item.nodeid.split("::")
        chosen = item.nodeid in wanted or any("::".join(parts[:n]) in wanted for n in range(1, len(parts)))
        (keep if chosen else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# -- collecting for a sharded run --------------------------------------------------------------------------------
# With ``LOOPDASH_COLLECT_FILE`` set (``pytest --collect-only -p loopdash_select``), the plugin writes the node
# ids pytest would run, after ``-m`` / ``-k`` and any selection, as a JSON object: ``tests`` in collection
# order, and ``broken``, the collectors that failed (a module that does not import). loopdash splits that
# list into shards; a broken module goes to one shard whole, where its error is reported as in any run.


def pytest_collectreport(report: Any) -> None:
    if os.environ.get("LOOPDASH_COLLECT_FILE") and report.failed:
        _state.setdefault("broken", []).append(report.nodeid)  # type: ignore[union-attr]


def pytest_collection_finish(session: Any) -> None:
    target = os.environ.get("LOOPDASH_COLLECT_FILE")
    if not target:
        return
    data = {"tests": [item.nodeid for item in session.items], "broken": list(_state.get("broken", []))}
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
