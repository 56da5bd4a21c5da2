"""Layout helpers that return HTML: where a long node id may wrap.

A node id such as ``tests/e2e/test_agents.py::TestRouting::test_execute[agent-7]`` has no spaces, so a
browser wraps it anywhere (mid-word) or not at all (past the edge of the page). ``nodeid_breaks`` puts
a line-break opportunity (``<wbr>``) after each ``/`` and before each ``::`` and ``[``, so it wraps
between its parts; CSS (``overflow-wrap: anywhere`` on ``.nodeid``) breaks inside a part only when the
part alone is wider than its box.
"""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_BREAK_AT = re.compile(r"/|(?=::)|(?=\[)")  # after a slash; before "::" and "["


@register.filter(is_safe=True)
def nodeid_breaks(value: object) -> SafeString:
    """The node id, escaped, with ``<wbr>`` where it may wrap: after ``/``, before ``::`` and ``[``.

    Escaping first is safe: it touches only ``<>&'"``, never the separators.
    """
    text = escape("" if value is None else str(value))
    return mark_safe(_BREAK_AT.sub(lambda match: match.group(0) + "<wbr>", text))
