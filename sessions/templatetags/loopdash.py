"""Formatting for pages: pass rates, money, durations, status colours. Every filter returns plain text."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from django import template
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.template.context import Context

from .. import roles

register = template.Library()

DASH = "—"


def _number(value: object) -> float | None:
    """A finite float, or None for None, "" (a missing template variable) and anything else."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def pct(value: float | None, places: int = 1) -> str:
    """A pass rate as "84.0%"; a run that executed nothing has none, shown as a dash (never 0%)."""
    number = _number(value)
    if number is None:
        return DASH
    return f"{number:.{int(places)}f}%"


@register.filter
def money(value: Decimal | float | int | None) -> str:
    """Whole dollars with thousands separators: MRR figures are monthly revenue, cents are noise."""
    number = _number(value)
    if number is None:
        return DASH
    return f"${number:,.0f}"


@register.filter
def seconds(value: float | None) -> str:
    """A wall time: "287.3 s" below ten minutes, "1 h 04 min" above; a dash when unknown."""
    value = _number(value)
    if value is None:
        return DASH
    if value < 600:
        return f"{value:.1f} s"
    minutes = int(value // 60)
    if minutes < 60:
        return f"{minutes} min {int(value % 60):02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@register.filter
def test_duration(value: float | None) -> str:
    """A test's duration to the millisecond, so that a 0.000 s "suspect" test shows as one."""
    number = _number(value)
    if number is None:
        return DASH
    return f"{number:.3f} s"


@register.filter
def rate_tone(run: object) -> str:
    """A colour for a run's pass rate; an incomplete run is never shown as green (it did not run to its end)."""
    rate = _number(getattr(run, "pass_rate", None))
    if getattr(run, "incomplete", False):
        return "warn"
    if rate is None:
        return "none"
    if rate >= 100:
        return "good"
    if rate >= 80:
        return "warn"
    return "bad"


@register.filter
def value_tone(value: float | None) -> str:
    rate = _number(value)
    if rate is None:
        return "none"
    return "good" if rate >= 100 else "warn" if rate >= 80 else "bad"


@register.filter
def get_item(mapping: dict | None, key: str) -> object:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def cut_at(text: str | None, limit: int) -> str:
    """The first ``limit`` characters; the caller shows that the text was cut."""
    return (text or "")[: int(limit)]


@register.filter
def longer_than(text: str | None, limit: int) -> bool:
    return len(text or "") > int(limit)


@register.simple_tag(takes_context=True)
def user_role(context: Context) -> str:
    request = context.get("request")
    user = getattr(request, "user", None)
    return roles.role_of(user) if user is not None else "anonymous"


_COLOUR = re.compile(r"^#[0-9a-fA-F]{3,8}$")


@register.filter
def safe_colour(value: str | None, default: str = "#6b7280") -> str:
    """An admin-defined colour, only when it is a hex colour: it lands in a style attribute."""
    return value if isinstance(value, str) and _COLOUR.match(value) else default


_CODE_LABELS = {"P": "passed", "F": "failed", "E": "error"}


@register.filter
def code_outcome(code: str) -> str:
    """A letter of TestCase.recent as an outcome name (for css classes and labels)."""
    return _CODE_LABELS.get(code, "skipped")


@register.filter
def share(value: float | None) -> str:
    """A 0-1 share as a whole percentage ("35%"); a dash when unknown."""
    number = _number(value)
    return DASH if number is None else f"{number * 100:.0f}%"


@register.filter
def number(value: float | None) -> str:
    """A measured value with up to four significant digits; a dash when unknown."""
    n = _number(value)
    return DASH if n is None else f"{n:.4g}"


@register.filter
def can_annotate(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return bool(user is not None and roles.can_annotate(user))


@register.filter
def words(name: str) -> str:
    """A field name for people: "root_cause" → "root cause"."""
    return str(name).replace("_", " ")


@register.filter
def done_count(items: list) -> int:
    return sum(1 for item in items or [] if getattr(item, "done", False))


@register.filter
def join_lines(items: object) -> str:
    """A list as lines (for a textarea); the result is escaped like any other text."""
    return "\n".join(str(i) for i in items) if isinstance(items, list | tuple) else ""


# -- the key-metrics table (``selectors.cycles.cycle_table``) -----------------------------------------------
# Its cells are figures; these filters write them as the seed logs do: "88.0% (22/25)", "+12.0 pts".
# The Markdown export writes the same text with ``cell_text`` and ``table_change``.


@register.filter
def cell_value(cell: object, kind: str) -> str:
    """A cell's figure: a pass rate ("88.0%"), money ("$1,200"), else a count; a dash where it has none."""
    value = _number(getattr(cell, "value", None))
    if value is None:
        return DASH
    if kind == "rate":
        return f"{value:.1f}%"
    if kind == "money":
        return money(value)
    return str(int(value))


@register.filter
def cell_count(cell: object) -> str:
    """The count behind a pass rate ("22/25"), which the page writes under the rate; else nothing."""
    executed = getattr(cell, "executed", None)
    if executed is None or _number(getattr(cell, "value", None)) is None:
        return ""
    return f"{getattr(cell, 'passed', 0)}/{executed}"


def cell_text(cell: object, kind: str) -> str:
    """The cell as one line of text: "88.0% (22/25)"."""
    count = cell_count(cell)
    return f"{cell_value(cell, kind)} ({count})" if count else cell_value(cell, kind)


@register.filter
def table_change(row: object) -> str:
    """From the first cycle to the last: "+12.0 pts", "−3", "+$1,200", or "eliminated" (a class fell to none)."""
    if getattr(row, "eliminated", False):
        return "eliminated"
    first, last = _number(getattr(row, "first", None)), _number(getattr(row, "last", None))
    if first is None or last is None:
        return DASH
    delta = last - first
    sign = "+" if delta >= 0 else "−"
    kind = getattr(row, "kind", "")
    if kind == "money":
        return f"{sign}${abs(delta):,.0f}"
    if kind == "rate":
        return f"{sign}{abs(delta):.1f} pts"
    return f"{sign}{abs(delta):.0f}"


@register.filter
def without_target(metrics: list) -> list:
    return [m for m in metrics or [] if getattr(m, "target", None) is None]
