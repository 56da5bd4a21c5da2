"""The compare page's table rows, built in Python: six lists of 50 rows made the page's template its cost.

Rendered by Django's template engine, each row took about 30 variable lookups, filters and two ``{% url %}``
reversals: 300 rows were most of the page's CPU (docs/PERFORMANCE.md, *Compare*). The same HTML is
made here with ``format_html`` (every value escaped) and URLs from one reversal per request.
"""

from __future__ import annotations

from django import template
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from ..selectors.compare import CompareRow
from .layout import nodeid_breaks
from .loopdash import test_duration

register = template.Library()

_PLACEHOLDER = 987654321  # reversed once, then replaced by each row's id


def _url_maker(name: str):
    pattern = reverse(name, args=[_PLACEHOLDER])
    head, _, tail = pattern.partition(str(_PLACEHOLDER))
    return lambda pk: f"{head}{pk}{tail}"


def _badge(result: object) -> SafeString:
    if result is None:
        return mark_safe('<span class="muted">absent</span>')
    return format_html('<span class="badge {0}">{0}</span>', result.outcome)


def _row(row: CompareRow, name: str, test_url, signature_url) -> SafeString:
    case, now, was = row.case, row.now, row.was
    priority = (
        format_html(' <span class="badge priority {}">{}</span>', case.priority.lower(), case.priority)
        if case.priority
        else ""
    )
    message = (
        format_html('<div class="message">{}</div>', truncatechars(now.message, 300))
        if now is not None and now.message and name != "fixed"
        else ""
    )
    signature = (
        format_html('<a class="sig-link" href="{}">signature</a>', signature_url(now.signature_id))
        if now is not None and now.signature_id
        else ""
    )
    durations = (
        format_html(
            '<td class="num">{}</td><td class="num count-warn">{}</td>',
            test_duration(was.duration if was is not None else None),
            test_duration(now.duration if now is not None else None),
        )
        if name == "slower"
        else ""
    )
    return format_html(
        '<tr>\n<td>\n<a class="nodeid" href="{}">{}</a>{}\n{}\n{}\n</td>\n'
        '<td class="nowrap">{}</td>\n<td class="nowrap">{}</td>\n{}</tr>\n',
        test_url(case.pk),
        nodeid_breaks(case.nodeid),
        priority,
        message,
        signature,
        _badge(was),
        _badge(now),
        durations,
    )


@register.simple_tag
def compare_rows(rows: list[CompareRow], name: str) -> SafeString:
    """The ``<tr>`` of one list's rows (a test, its result before and now, and the durations when slower)."""
    test_url, signature_url = _url_maker("test_detail"), _url_maker("signature_detail")
    return format_html_join("", "{}", ((_row(row, name, test_url, signature_url),) for row in rows))
