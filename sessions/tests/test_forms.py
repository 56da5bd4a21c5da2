"""Query strings and posted forms as the pages read them (``sessions.forms``).

Query strings are lenient: whatever a hand-edited link holds, the page answers with "not given",
never with an error page. These are pure parsers: no database.
"""

from __future__ import annotations

import pytest
from django.http import QueryDict

from sessions import forms
from sessions.models import TestRun


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12", 12), ("0", 0), ("-1", None), ("x", None), ("", None), (None, None), ("1.5", None)],
)
def test_a_cursor_is_a_row_id_or_nothing(raw: str | None, expected: int | None) -> None:
    assert forms.cursor(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("7", 7), ("-3", -3), ("", None), (None, None), ("seven", None)])
def test_optional_int(raw: object, expected: int | None) -> None:
    assert forms.optional_int(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("title", {"title": True}),
        ("7", {"analysis": 7, "step": None}),
        ("7-3", {"analysis": 7, "step": 3}),
        ("x-y", {"analysis": None, "step": None}),
        ("", {"analysis": None, "step": None}),
    ],
)
def test_what_a_page_opens_in_edit_mode(raw: str, expected: dict) -> None:
    assert forms.edit_target(raw) == expected


def test_result_filters_drop_what_they_do_not_understand() -> None:
    filters = forms.ResultFilters.from_query(QueryDict("outcome=exploded&q=%20%20chat%20&priority=P1&suspect=on"))
    assert filters == forms.ResultFilters(outcome="", q="chat", priority="P1", suspect=True)
    assert filters.active
    long = forms.ResultFilters.from_query(QueryDict("q=" + "a" * 500 + "&priority=" + "P" * 50 + "&outcome=failed"))
    assert len(long.q) == 200 and len(long.priority) == 10 and long.outcome == "failed"
    assert not forms.ResultFilters.from_query(QueryDict("suspect=no")).active


def test_the_run_page_query_reads_filters_and_cursors() -> None:
    query = forms.RunQuery.from_query(QueryDict("outcome=error&after=40&before=oops"))
    assert query.filters.outcome == "error" and query.after == 40 and query.before is None


def test_the_compare_query_prefers_the_run_the_url_names() -> None:
    assert forms.CompareQuery.from_query(QueryDict("with=5"), other=9).other == 9
    query = forms.CompareQuery.from_query(QueryDict("with=5&list=fixed&after=-2"))
    assert (query.other, query.list, query.after) == (5, "fixed", None)
    assert forms.CompareQuery.from_query(QueryDict("with=five")).other is None


def test_the_session_and_signature_queries() -> None:
    session = forms.SessionQuery.from_query(QueryDict("partial=board&cycles_before=12&edit=x"))
    assert (session.partial, session.cycles_before, session.edit) == ("board", 12, None)
    signature = forms.SignatureQuery.from_query(QueryDict("partial=analysis&analysis=4&edit=4-2"))
    assert (signature.partial, signature.analysis, signature.editing) == ("analysis", 4, {"analysis": 4, "step": 2})


def test_posted_forms() -> None:
    rerun = forms.RerunForm.from_post(QueryDict("tests=3&tests=4"))
    assert rerun.scope == TestRun.Scope.ALL and rerun.case_ids == ["3", "4"]
    assert forms.RerunForm.from_post(QueryDict("scope=failed")).scope == "failed"
    assert forms.merge_target_id(QueryDict("target_id=&target=8")) == 8
    assert forms.merge_target_id(QueryDict("target_id=2&target=8")) == 2
    assert forms.merge_target_id(QueryDict("target_id=abc")) is None
    assert forms.revision(QueryDict("revision=")) is None and forms.revision(QueryDict("revision=r2")) == "r2"
    assert forms.criterion_data(QueryDict("text=x&kind=manual")) == {"text": "x", "kind": "manual", "tests": ""}
    assert forms.checked("on") and forms.checked("1") and not forms.checked("0") and not forms.checked(None)
