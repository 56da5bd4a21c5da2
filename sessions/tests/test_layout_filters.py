"""Node ids wrap between their parts: ``<wbr>`` after ``/`` and before ``::`` and ``[``, text escaped."""

from __future__ import annotations

from django.template import Context, Template

from sessions.templatetags.layout import nodeid_breaks


def test_break_points_sit_at_the_separators_only() -> None:
    assert (
        nodeid_breaks("tests/e2e/test_chat.py::TestRouting::test_execute[agent-7]")
        == "tests/<wbr>e2e/<wbr>test_chat.py<wbr>::TestRouting<wbr>::test_execute<wbr>[agent-7]"
    )
    assert nodeid_breaks("test_plain_name") == "test_plain_name"
    assert nodeid_breaks(None) == ""


def test_the_node_id_is_escaped_before_the_breaks_go_in() -> None:
    html = Template("{% load layout %}{{ n|nodeid_breaks }}").render(Context({"n": "t.py::test_x[<script>&'\"]"}))
    assert html == "t.py<wbr>::test_x<wbr>[&lt;script&gt;&amp;&#x27;&quot;]"
