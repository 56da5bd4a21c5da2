"""Comparing two runs: set-based lists, each a page plus a count; the default is the previous full run."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions.models import TestRun
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def pair():
    before = ingest(
        [
            Case("test_fixed", "failed", 1.0, "AssertionError: was broken"),
            Case("test_still", "failed", 1.0, "AssertionError: still broken"),
            Case("test_breaks", "passed", 1.0),
            Case("test_slows", "passed", 1.0),
            Case("test_removed", "passed", 1.0),
            Case("test_skips", "skipped", 0.0, "later"),
        ]
        + [Case(f"test_same_{i}", "passed", 1.0) for i in range(60)],
        cycle=1,
        label="before",
    )
    after = ingest(
        [
            Case("test_fixed", "passed", 1.0),
            Case("test_still", "failed", 1.0, "AssertionError: still broken"),
            Case("test_breaks", "failed", 1.0, "AssertionError: broke"),
            Case("test_slows", "passed", 3.0),
            Case("test_new", "passed", 1.0),
            Case("test_new_failing", "error", 1.0, "RuntimeError: boom"),
            Case("test_skips", "failed", 1.0, "AssertionError: ran at last"),
        ]
        + [Case(f"test_same_{i}", "passed", 1.0) for i in range(60)]
        + [Case(f"test_extra_{i:03d}", "passed", 1.0) for i in range(70)],
        cycle=2,
        label="after",
    )
    return before, after


def names(item) -> list[str]:
    return [row.case.nodeid.rsplit("::", 1)[1] for row in item.rows]


def was(item) -> list[str | None]:
    return [row.was.outcome if row.was else None for row in item.rows]


def test_the_six_lists(client, viewer, pair) -> None:
    before, after = pair
    client.force_login(viewer)
    response = client.get(reverse("run_compare_with", args=[after.pk, before.pk]))
    assert response.status_code == 200
    lists = {item.name: item for item in response.context["lists"]}
    assert names(lists["new_failures"]) == ["test_breaks", "test_skips", "test_new_failing"]  # in test id order
    assert was(lists["new_failures"]) == ["passed", "skipped", None]  # None: a new test
    assert names(lists["fixed"]) == ["test_fixed"]
    assert names(lists["still_failing"]) == ["test_still"]
    assert lists["new_tests"].count == 72 and len(lists["new_tests"].rows) == 50
    assert names(lists["removed_tests"]) == ["test_removed"]
    assert names(lists["slower"]) == ["test_slows"]
    assert lists["slower"].rows[0].slower_by == pytest.approx(2.0)
    assert [row.now.outcome for row in lists["fixed"].rows] == ["passed"]
    html = response.content.decode()
    assert "Next 50 →" in html


def test_a_list_pages_by_keyset_through_htmx(client, viewer, pair) -> None:
    before, after = pair
    client.force_login(viewer)
    url = reverse("run_compare_with", args=[after.pk, before.pk])
    first = client.get(url, {"list": "new_tests"}, headers=HX)
    assert first.content.decode().lstrip().startswith('<section class="card" id="cmp-new_tests">')
    page = first.context["item"]
    second = client.get(url, {"list": "new_tests", "after": page.next_after}, headers=HX).context["item"]
    assert len(page.rows) == 50 and len(second.rows) == 22 and second.next_after is None
    assert not {r.case.pk for r in page.rows} & {r.case.pk for r in second.rows}


def test_the_default_is_the_previous_complete_full_run(client, viewer, pair) -> None:
    before, after = pair
    rerun = ingest([Case("test_still", "failed", 1.0, "AssertionError: still broken")], cycle=2, label="rerun")
    TestRun.objects.filter(pk=rerun.pk).update(scope=TestRun.Scope.FAILED)
    latest = ingest([Case("test_fixed")], cycle=3, label="latest")
    client.force_login(viewer)
    assert client.get(reverse("run_compare", args=[latest.pk])).context["base"] == after
    assert client.get(reverse("run_compare", args=[after.pk]), {"with": rerun.pk}).context["base"] == rerun
    empty = client.get(reverse("run_compare", args=[before.pk]))
    assert empty.context["base"] is None and "No earlier complete full run" in empty.content.decode()


def test_runs_of_different_environments_are_not_compared(client, viewer, pair) -> None:
    _before, after = pair
    import io

    from sessions.services.ingestion.upload import ingest_file
    from sessions.tests.test_pages import junit_xml

    other = ingest_file(
        io.BytesIO(junit_xml([Case("test_x")], suite="p")),
        "p.xml",
        session_slug="prod",
        environment_name="prod",
        create_environment=True,
    ).run
    client.force_login(viewer)
    response = client.get(reverse("run_compare_with", args=[after.pk, other.pk]))
    assert response.context["base"] is None and "different environments" in response.content.decode()


def test_the_default_prefers_the_previous_run_of_the_same_suite(client, viewer) -> None:
    full = [Case(f"test_{i}") for i in range(40)]
    p1 = [Case(f"test_{i}") for i in range(5)]
    full_1 = ingest(full, cycle=1, label="full")
    p1_1 = ingest(p1, cycle=1, label="p1")
    full_2 = ingest(full[:-1] + [Case("test_39", "failed", 1.0, "AssertionError: x")], cycle=2, label="full")
    p1_2 = ingest(p1[:-1] + [Case("test_4", "failed", 1.0, "AssertionError: x")], cycle=2, label="p1")
    client.force_login(viewer)
    assert client.get(reverse("run_compare", args=[full_2.pk])).context["base"] == full_1  # not the P1 run
    assert client.get(reverse("run_compare", args=[p1_2.pk])).context["base"] == p1_1  # not the full run


def test_the_rows_are_escaped_and_link_to_the_test_and_its_signature(client, viewer) -> None:
    """The rows are built in Python (templatetags/compare_rows.py): every value escaped, the links right."""
    hostile = 'AssertionError: <img src=x onerror=alert(1)> & "quoted"'
    ingest([Case("test_x", "passed", 1.0)], cycle=1, label="before")
    after = ingest([Case("test_x", "failed", 1.0, hostile), Case("test_<b>new</b>", "passed", 2.0)], cycle=2)
    client.force_login(viewer)
    html = client.get(reverse("run_compare", args=[after.pk])).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;" in html
    assert "<b>new</b>" not in html and "test_&lt;b&gt;new&lt;/<wbr>b&gt;" in html  # may wrap after the "/"
    failed = after.results.get(outcome="failed")
    assert f'href="{reverse("test_detail", args=[failed.case_id])}"' in html
    assert f'href="{reverse("signature_detail", args=[failed.signature_id])}"' in html
    assert '<span class="badge passed">passed</span>' in html and '<span class="muted">absent</span>' in html
