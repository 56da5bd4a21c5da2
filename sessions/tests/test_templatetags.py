"""Template filters that turn the key-metrics table's figures into text (``templatetags.loopdash``).

The session page and the Markdown export write the same cells, the way the seed logs do:
"88.0% (22/25)", "+12.0 pts", "eliminated".
"""

from __future__ import annotations

import pytest

from sessions.selectors.cycles import EMPTY, Cell, CycleTableRow
from sessions.templatetags.loopdash import cell_count, cell_text, cell_value, table_change


@pytest.mark.parametrize(
    ("cell", "kind", "value", "count", "text"),
    [
        (Cell(88.0, 22, 25), "rate", "88.0%", "22/25", "88.0% (22/25)"),
        (Cell(100.0, 0, 0), "rate", "100.0%", "0/0", "100.0% (0/0)"),
        (Cell(7), "count", "7", "", "7"),
        (Cell(0), "class", "0", "", "0"),
        (Cell(120000.0), "money", "$120,000", "", "$120,000"),
        (EMPTY, "rate", "—", "", "—"),
        (EMPTY, "money", "—", "", "—"),
    ],
)
def test_cells(cell: Cell, kind: str, value: str, count: str, text: str) -> None:
    assert cell_value(cell, kind) == value
    assert cell_count(cell) == count
    assert cell_text(cell, kind) == text


@pytest.mark.parametrize(
    ("kind", "first", "last", "eliminated", "change"),
    [
        ("rate", 70.0, 82.0, False, "+12.0 pts"),
        ("rate", 82.0, 70.0, False, "−12.0 pts"),
        ("rate", 70.0, None, False, "—"),
        ("count", 6.0, 2.0, False, "−4"),
        ("count", 2.0, 2.0, False, "+0"),
        ("class", 3.0, 0.0, True, "eliminated"),
        ("class", 0.0, 2.0, False, "+2"),
        ("money", 120000.0, 0.0, False, "−$120,000"),
        ("money", 0.0, 1500.0, False, "+$1,500"),
    ],
)
def test_change_from_the_first_cycle_to_the_last(
    kind: str, first: float | None, last: float | None, eliminated: bool, change: str
) -> None:
    row = CycleTableRow("x", kind, [], first, last, eliminated=eliminated)
    assert table_change(row) == change
