"""The pages: login everywhere, real ingested data, HTMX partials, filters, keyset pagination, query bounds.

Data goes in the way users put it in: JUnit XML bytes through ``ingest_file``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import quoteattr

import pytest
from django.urls import reverse

from sessions.models import (
    Analysis,
    BusinessArea,
    Deployment,
    FailureSignature,
    ImpactRule,
    LoopSession,
    TestCase,
    TestResult,
    TestRun,
)
from sessions.services.ingestion.upload import ingest_file

# -- building JUnit files --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One <testcase> to write: outcome is passed, failed, error or skipped."""

    name: str
    outcome: str = "passed"
    time: float = 1.25
    message: str = ""
    module: str = "tests.e2e.test_chat"


def junit_xml(cases: list[Case], *, suite: str = "e2e") -> bytes:
    """A pytest-style JUnit file; the suite name makes otherwise equal files distinct uploads."""
    body = []
    for case in cases:
        attrs = f'classname={quoteattr(case.module)} name={quoteattr(case.name)} time="{case.time}"'
        if case.outcome == "passed":
            body.append(f"<testcase {attrs}/>")
            continue
        tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[case.outcome]
        message = quoteattr(case.message or f"AssertionError: {case.name} broke")
        text = (case.message or "assert False").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        body.append(f"<testcase {attrs}><{tag} message={message}>{text}</{tag}></testcase>")
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<testsuites><testsuite name={quoteattr(suite)} time="{sum(c.time for c in cases):.3f}">'
        f"{''.join(body)}</testsuite></testsuites>"
    )
    return xml.encode("utf-8")


def ingest(cases: list[Case], *, session: str = "golden-path", cycle: int | None = None, label: str = "e2e") -> TestRun:
    data = junit_xml(cases, suite=f"{label}-{cycle}")
    return ingest_file(
        io.BytesIO(data),
        f"{label}.xml",
        session_slug=session,
        cycle_number=cycle,
        environment_name="staging",
        create_environment=True,
    ).run


def mixed_cases(n: int, *, prefix: str = "test") -> list[Case]:
    """``n`` results: every 10th failed (P1 chat tests among them: a third of all tests are P1),
    every 25th an error, every 20th skipped, every 40th passed in 0.0 s (suspect); the rest passed."""
    cases = []
    for i in range(n):
        p1 = i % 3 == 1
        name = f"{prefix}_{'p1_' if p1 else ''}{i:05d}"
        if i % 10 == 1:
            cases.append(Case(name, "failed", 2.5, f"ConnectionError: websocket 1011 internal error at step {i}"))
        elif i % 25 == 2:
            cases.append(Case(name, "error", 0.5, "TimeoutError: agent did not answer within 120 s"))
        elif i % 20 == 3:
            cases.append(Case(name, "skipped", 0.0, "needs GPU"))
        elif i % 40 == 4:
            cases.append(Case(name, "passed", 0.0))
        else:
            cases.append(Case(name, "passed", 1.5))
    return cases


def make_impact():
    chat = BusinessArea.objects.get_or_create(name="chat", defaults={"mrr": Decimal("120000")})[0]
    ImpactRule.objects.get_or_create(
        match=ImpactRule.Match.GLOB, pattern="*test_p1_*", priority="P1", area=chat, position=0
    )
    return chat


def deploy(run: TestRun, revision: str, commit: str) -> Deployment:
    """A succeeded deployment of a run's cycle, made before the run (as a cycle's deploy is)."""
    from django.utils import timezone

    from sessions.services.lifecycle import on_deployment_succeeded

    deployment = Deployment.objects.create(
        environment=run.environment, cycle=run.cycle, revision=revision, commit_sha=commit,
        status="succeeded", finished_at=timezone.now(),
    )  # fmt: skip
    on_deployment_succeeded(deployment)
    return deployment


def triage_world(size: int, *, session: str = "golden-path") -> dict:
    """Two cycles of ``size`` results each through real ingestion, with everything triage shows.

    Deployments, a rerun of failed tests that flips one (flaky), a five-whys analysis with three steps
    and a fix (through the services, so with an edit history), one criterion of each kind, a merge
    and signature events. Returns the objects the tests look at.
    """
    from sessions.models import SuccessCriterion
    from sessions.services import criteria, triage

    make_impact()
    first = ingest(mixed_cases(size), session=session, cycle=1, label="first")
    TestRun.objects.filter(pk=first.pk).update(deployment=deploy(first, "r1", "aaaaaaa1111"))
    cases = mixed_cases(size)
    cases[2] = Case(cases[2].name, "passed", 1.0)  # fixed in cycle 2
    cases.append(Case("test_brand_new", "failed", 0.7, "KeyError: 'agent_id' <script>alert(1)</script>"))
    second = ingest(cases, session=session, cycle=2, label="second")
    deployment = deploy(second, "r2", "bbbbbbb2222")
    TestRun.objects.filter(pk=second.pk).update(deployment=deployment)
    first.refresh_from_db()
    second.refresh_from_db()
    rerun_cases = [Case(mixed_cases(size)[1].name, "passed", 2.0)]
    rerun = ingest(rerun_cases, session=session, cycle=2, label="rerun")
    TestRun.objects.filter(pk=rerun.pk).update(scope=TestRun.Scope.FAILED, rerun_of=second, deployment=deployment)

    signatures = list(FailureSignature.objects.filter(run_counts__run=second).order_by("-result_count", "pk"))
    signature = signatures[0]
    from django.contrib.auth import get_user_model

    author = get_user_model().objects.get_or_create(username="writer")[0]
    analysis = triage.create_analysis(signature, author, "1011 on connect")
    for question in ("Why 1011?", "Why does logging crash?", "Why is an enum logged?"):
        analysis.refresh_from_db()
        triage.add_step(analysis, {"version": analysis.version, "question": question, "answer": "Because."}, author)
    analysis.refresh_from_db()
    triage.add_fix(
        analysis, {"version": analysis.version, "sha": "ccccccc3333", "message": "Log the state's name"}, author
    )
    analysis.refresh_from_db()
    if len(signatures) > 2:
        triage.merge(signatures[2], signatures[1], author)
    the_session = LoopSession.objects.get(slug=session)
    kinds = [
        ("Manual item", SuccessCriterion.Kind.MANUAL, {}),
        ("P1 at 100%", SuccessCriterion.Kind.PASS_RATE, {"priority": "P1", "threshold": 100}),
        ("No suspects", SuccessCriterion.Kind.NO_SUSPECTS, {}),
        ("Named tests pass", SuccessCriterion.Kind.TESTS_PASS, {"tests": ["tests/e2e/test_chat.py::test_00000"]}),
        ("Latency", SuccessCriterion.Kind.METRIC, {"metric": "ws_latency_ms"}),
    ]
    for text, kind, params in kinds:
        criteria.add_criterion(the_session, {"text": text, "kind": kind, **params}, author)
    case = TestCase.objects.get(nodeid__endswith=mixed_cases(size)[1].name)
    return {
        "session": the_session,
        "first": first,
        "second": second,
        "rerun": rerun,
        "deployment": deployment,
        "signature": signature,
        "analysis": analysis,
        "case": case,
        "author": author,
    }


@pytest.fixture
def impact(db):
    """P1 chat tests put $120,000 of MRR at risk when they fail."""
    chat = BusinessArea.objects.create(name="chat", mrr=Decimal("120000"))
    ImpactRule.objects.create(match=ImpactRule.Match.GLOB, pattern="*test_p1_*", priority="P1", area=chat, position=0)
    return chat


@pytest.fixture
def loop(impact):
    """Three cycles: 20 results, then 20 with fewer failures, then a run with nothing executed."""
    first = ingest(mixed_cases(20), cycle=1, label="cycle1")
    cases = [
        Case(c.name, "passed", 1.0) if c.outcome == "failed" and i > 5 else c for i, c in enumerate(mixed_cases(20))
    ]
    second = ingest(cases, cycle=2, label="cycle2")
    third = ingest([Case("test_only_skipped", "skipped", 0.0, "not today")], cycle=3, label="cycle3")
    return first, second, third


@pytest.fixture
def client_vera(client, viewer):
    client.force_login(viewer)
    return client


def page_urls(run: TestRun) -> dict[str, str]:
    signature = FailureSignature.objects.order_by("id").first()
    analysis = Analysis.objects.create(signature=signature, problem="1011 on connect", root_cause="enum in a log line")
    analysis.steps.create(position=1, question="Why 1011?", answer="The server crashed while logging")
    analysis.fixes.create(sha="abc1234def", message="Log the state's name")
    case = TestCase.objects.order_by("id").first()
    deployment = Deployment.objects.create(
        environment=run.environment,
        cycle=run.cycle,
        revision="r42",
        commit_sha="abc1234def",
        status="succeeded",
        log_tail="deploying r42\n<script>alert('log')</script>\ndone",
    )
    return {
        "sessions_list": reverse("sessions_list"),
        "session_detail": reverse("session_detail", args=[run.session.slug]),
        "run_detail": reverse("run_detail", args=[run.pk]),
        "signature_detail": reverse("signature_detail", args=[signature.pk]),
        "test_detail": reverse("test_detail", args=[case.pk]),
        "deployment_detail": reverse("deployment_detail", args=[deployment.pk]),
    }


# -- login -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_requires_login(client, loop) -> None:
    for name, url in page_urls(loop[0]).items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith("/accounts/login/?next="), name


@pytest.mark.django_db
def test_htmx_partial_requires_login_too(client, loop) -> None:
    response = client.get(
        reverse("run_detail", args=[loop[0].pk]), {"outcome": "failed"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_login_form_logs_in_and_redirects(client, viewer) -> None:
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content
    response = client.post("/accounts/login/", {"username": "vera", "password": "pw-vera"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/")
    assert b"vera" in home.content and b"viewer" in home.content
    assert b'action="/accounts/logout/"' in home.content


@pytest.mark.django_db
def test_login_form_shows_an_error_for_a_bad_password(client, viewer) -> None:
    response = client.post("/accounts/login/", {"username": "vera", "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


# -- pages with data -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sessions_list_shows_latest_run_figures(client_vera, loop) -> None:
    first, second, third = loop
    response = client_vera.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Golden Path" in html
    assert "staging" in html
    assert f"run {third.pk}" in html  # the latest run
    # The latest run executed nothing: no pass rate, never 0% or 100%.
    session = response.context["sessions"][0]
    assert session.latest_run_id == third.pk and session.cycle_count == 3
    assert third.pass_rate is None


@pytest.mark.django_db
def test_session_page_shows_chart_and_cycle_table(client_vera, loop) -> None:
    first, second, third = loop
    response = client_vera.get(reverse("session_detail", args=["golden-path"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-chart="trend-figure"' in html
    assert '<script id="trend-figure" type="application/json">' in html
    assert "vendor/plotly.min.js" in html and "cdn" not in html.lower()
    figure = response.context["figure"]
    assert figure["data"][1]["x"] == [1, 2, 3]
    assert figure["data"][1]["y"] == [first.pass_rate, second.pass_rate, None]
    assert figure["data"][2]["name"] == "P1 pass rate"
    for run in loop:
        assert f'href="/runs/{run.pk}/"' in html
    assert "Cycle 3" in html and "Cycle 1" in html
    assert f"{first.pass_rate:.1f}%" in html
    assert "$120,000" in html


@pytest.mark.django_db
def test_the_key_metrics_table_writes_each_rate_with_its_count(client_vera, loop) -> None:
    """The table holds figures; the template filters and the export write them as the seed logs do."""
    first, second, third = loop
    response = client_vera.get(reverse("session_detail", args=["golden-path"]))
    html = response.content.decode()
    table = response.context["cycle_table"]
    assert table.cycles == [1, 2, 3]
    rows = {row.label: row for row in table.rows}
    assert [cell.value for cell in rows["Pass rate"].cells] == [first.pass_rate, second.pass_rate, None]
    assert f'{first.pass_rate:.1f}%<span class="cell-sub">{first.passed}/{first.executed}</span>' in html
    failing = [first.failed + first.errors, second.failed + second.errors, third.failed + third.errors]
    assert [cell.value for cell in rows["Failing tests"].cells] == failing
    assert f'<td class="num change">−{failing[0] - failing[2]}</td>' in html
    classes = [row for row in table.rows if row.kind == "class"]
    assert classes and all(row.eliminated for row in classes)  # the last cycle failed nothing
    assert '<td class="num change">eliminated</td>' in html

    report = client_vera.get(reverse("session_export", args=["golden-path"])).content.decode()
    assert f"| Pass rate | {first.pass_rate:.1f}% ({first.passed}/{first.executed}) |" in report
    assert f"| Failing tests | {failing[0]} | {failing[1]} | {failing[2]} | −{failing[0] - failing[2]} |" in report


@pytest.mark.django_db
def test_run_page_shows_totals_signatures_and_suspects(client_vera, loop) -> None:
    run = loop[0]
    response = client_vera.get(reverse("run_detail", args=[run.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert run.failed == 2 and run.errors == 1 and run.suspect == 1
    assert f"{run.pass_rate:.1f}%" in html
    assert "$120,000" in html
    signatures = response.context["signatures"]
    assert {rs.signature.title for rs in signatures} >= {
        s.title for s in FailureSignature.objects.filter(run_counts__run=run)
    }
    for rs in signatures:
        assert f'href="/signatures/{rs.signature_id}/"' in html
    assert 'id="suspects"' in html and "0.000 s" in html
    assert '<span class="badge priority p1">P1</span>' in html  # by-priority table


@pytest.mark.django_db
def test_run_without_executed_tests_shows_a_dash_not_zero(client_vera, loop) -> None:
    response = client_vera.get(reverse("run_detail", args=[loop[2].pk]))
    html = response.content.decode()
    assert '<div class="value">—</div>' in html
    assert "0.0%" not in html


@pytest.mark.django_db
def test_incomplete_run_is_badged_and_never_green(client_vera, impact) -> None:
    run = ingest([Case("test_a"), Case("test_b")], cycle=1)
    TestRun.objects.filter(pk=run.pk).update(incomplete=True, exitstatus=2, counted=False)
    html = client_vera.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert "incomplete · exit 2" in html
    assert '<div class="stat warn"><div class="label">Pass rate</div><div class="value">100.0%' in html


@pytest.mark.django_db
def test_signature_test_and_deployment_pages_render(client_vera, loop) -> None:
    urls = page_urls(loop[1])
    signature = FailureSignature.objects.get(pk=urls["signature_detail"].split("/")[2])
    html = client_vera.get(urls["signature_detail"]).content.decode()
    assert signature.title in html or signature.title.replace("'", "&#x27;") in html
    assert f"/runs/{signature.first_seen_run_id}/" in html
    assert "Why 1011?" in html and "abc1234def"[:12] in html

    case = TestCase.objects.order_by("id").first()
    html = client_vera.get(urls["test_detail"]).content.decode()
    assert case.nodeid in html.replace("<wbr>", "")  # the heading may wrap at the node id's separators
    assert html.count('href="/runs/') >= TestResult.objects.filter(case=case).count()

    html = client_vera.get(urls["deployment_detail"]).content.decode()
    assert "abc1234def" in html
    assert "&lt;script&gt;alert(&#x27;log&#x27;)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_unknown_objects_are_404(client_vera) -> None:
    for url in ("/sessions/nope/", "/runs/999999/", "/signatures/999999/", "/tests/999999/", "/deployments/999999/"):
        assert client_vera.get(url).status_code == 404, url


# -- escaping --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_script_in_a_failure_message_is_shown_escaped(client_vera, impact) -> None:
    evil = "<script>alert('pwned')</script>"
    run = ingest([Case("test_evil", "failed", 1.0, f"AssertionError: {evil}"), Case("test_ok")], cycle=1)
    pages = [
        reverse("run_detail", args=[run.pk]),
        reverse("signature_detail", args=[FailureSignature.objects.get().pk]),
        reverse("test_detail", args=[TestCase.objects.get(nodeid__endswith="test_evil").pk]),
    ]
    for url in pages:
        html = client_vera.get(url).content.decode()
        assert evil not in html, url
        assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html, url


# -- results table: HTMX, filters, keyset pagination -----------------------------------------------


@pytest.mark.django_db
def test_htmx_request_gets_only_the_results_partial(client_vera, loop) -> None:
    url = reverse("run_detail", args=[loop[0].pk])
    response = client_vera.get(url, {"outcome": "failed"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html and 'id="signatures"' not in html and 'id="result-filters"' not in html
    assert "HX-Request" in response["Vary"]
    assert html.count('data-outcome="failed"') == 2 and 'data-outcome="passed"' not in html


@pytest.mark.django_db
def test_htmx_history_restore_gets_the_whole_page(client_vera, loop) -> None:
    url = reverse("run_detail", args=[loop[0].pk])
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    html = client_vera.get(url, {"outcome": "failed"}, headers=headers).content.decode()
    assert "<html" in html and 'id="result-filters"' in html


def _rows(response) -> list[TestResult]:
    return response.context["page"].rows


@pytest.mark.django_db
def test_results_filters(client_vera, loop) -> None:
    run = loop[0]
    url = reverse("run_detail", args=[run.pk])
    get = lambda **q: _rows(client_vera.get(url, q, headers={"HX-Request": "true"}))  # noqa: E731

    assert len(get()) == 20
    assert {r.outcome for r in get(outcome="failed")} == {"failed"} and len(get(outcome="failed")) == 2
    assert {r.outcome for r in get(outcome="error")} == {"error"} and len(get(outcome="error")) == 1
    assert [r.case.nodeid.rsplit("_", 1)[1] for r in get(q="00012")] == ["00012"]
    assert len(get(q="_0001")) == 10
    assert all("p1_" in r.case.nodeid for r in get(priority="P1")) and len(get(priority="P1")) == 7
    suspects = get(suspect="1")
    assert [r.suspect for r in suspects] == [True] * run.suspect and len(suspects) == 1
    assert get(outcome="failed", priority="P1") == [r for r in get(outcome="failed") if r.case.priority == "P1"]
    # Nonsense in the query string is no filter and no error.
    assert len(get(outcome="bogus", after="x", before="-3")) == 20


@pytest.mark.django_db
def test_keyset_pagination_returns_the_right_rows(client_vera, impact) -> None:
    run = ingest(mixed_cases(130), cycle=1)
    url = reverse("run_detail", args=[run.pk])
    all_ids = list(TestResult.objects.filter(run=run).order_by("id").values_list("id", flat=True))
    hx = {"HX-Request": "true"}

    first = client_vera.get(url, headers=hx).context["page"]
    assert [r.pk for r in first.rows] == all_ids[:50]
    assert first.has_next and not first.has_previous

    second = client_vera.get(url, {"after": first.next_after}, headers=hx).context["page"]
    assert [r.pk for r in second.rows] == all_ids[50:100]
    assert second.has_next and second.has_previous

    third = client_vera.get(url, {"after": second.next_after}, headers=hx)
    page3 = third.context["page"]
    assert [r.pk for r in page3.rows] == all_ids[100:]
    assert not page3.has_next and page3.has_previous
    assert 'rel="next"' not in third.content.decode()

    back = client_vera.get(url, {"before": page3.previous_before}, headers=hx).context["page"]
    assert [r.pk for r in back.rows] == all_ids[50:100]
    assert back.has_next and back.has_previous

    back_to_start = client_vera.get(url, {"before": back.previous_before}, headers=hx).context["page"]
    assert [r.pk for r in back_to_start.rows] == all_ids[:50]
    assert not back_to_start.has_previous

    # Pagination keeps the filters: the next link of a filtered page carries them.
    passed_ids = list(TestResult.objects.filter(run=run, outcome="passed").order_by("id").values_list("id", flat=True))
    response = client_vera.get(url, {"outcome": "passed"}, headers=hx)
    assert [r.pk for r in response.context["page"].rows] == passed_ids[:50]
    html = response.content.decode()
    assert f"?outcome=passed&amp;after={passed_ids[49]}" in html
    following = client_vera.get(url, {"outcome": "passed", "after": passed_ids[49]}, headers=hx).context["page"]
    assert [r.pk for r in following.rows] == passed_ids[50:100]


# -- query bounds: see test_query_bounds.py (every page, 10 and 10,000 results) -------------------


# -- healthz ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_is_ok_without_login(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["database"], body["broker"]) == ("ok", "ok") and isinstance(body["workers"], int)
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down(client, settings) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok" and body["broker"] == "error"
    assert "broker" in body["errors"] and "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_does_not_answer(client, monkeypatch) -> None:
    from django.db import OperationalError

    from sessions import health

    def down(alias: str = "default") -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "check_database", down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "error"
    assert response.json()["errors"] == {"database": "OperationalError"}
