"""Excluding and including a run from the pages: the run page's banner and buttons, the session page's
activity, badges and headline.

Runs are stored the way workers store them (``ResultWriter`` then ``complete_run``: the whole pipeline,
counting included), so an automatic exclusion is the real rule at work; buttons post to the real views.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.ingest.records import Outcome, ParsedResult
from sessions.models import Environment, LoopSession, SessionEvent, TestRun, WorkStatus
from sessions.services import counting
from sessions.services.deletion import delete_runs
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.services.ingestion.writer import ResultWriter
from sessions.services.run_completion import complete_run

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


def staging_session() -> LoopSession:
    """A session whose environment deploys and runs tests, with two revisions (r2 the newest)."""
    env = Environment.objects.create(
        name="staging",
        working_dir="examples/staging",
        deploy_command=["{python}", "deploy.py", "--revision", "{revision}"],
        test_command=["{python}", "-m", "pytest", "tests"],
        revisions=[
            {"revision": "r1", "commit": "2cb57056afa89779fd29e0e3f3682a1694f21d8d", "message": "first"},
            {"revision": "r2", "commit": "44aee3cf06e34e746f52cb1ccf5caf5a778752a5", "message": "second"},
        ],
        default_revision="r1",
    )
    return LoopSession.objects.create(environment=env, title="Golden path", slug="golden")


@pytest.fixture
def session(db) -> LoopSession:
    return staging_session()


def stored_run(
    session: LoopSession, outcomes: dict[str, str], *, status: str = WorkStatus.FINISHED, message: str = "boom"
) -> TestRun:
    """A run with these results, stored by the workers' writer and ended through ``complete_run``."""
    run = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(),
    )  # fmt: skip
    writer = ResultWriter(run)
    writer.add(
        ParsedResult(
            nodeid=f"tests/test_e2e.py::{name}", name=name, outcome=Outcome(outcome), duration=1.5,
            message=message if outcome in ("failed", "error") else "",
            error_type="ConnectionRefusedError" if message == REFUSED else "AssertionError",
        )
        for name, outcome in outcomes.items()
    )  # fmt: skip
    return complete_run(run, writer=writer, status=status)


def good_run(session: LoopSession) -> TestRun:
    return stored_run(session, {"test_login": "passed", "test_chat": "failed", "test_stream": "passed"})


def unreachable_run(session: LoopSession) -> TestRun:
    """Every test refused a connection: the counting rule excludes the run by itself."""
    return stored_run(session, {f"test_{i}": "failed" for i in range(8)}, message=REFUSED)


def headline(html: str) -> str:
    """The run the session page's headline cards read ("" when none)."""
    match = re.search(r'id="headline" data-run="(\d*)"', html)
    assert match, "no headline on the session page"
    return match.group(1)


# -- the run page ----------------------------------------------------------------------------------------------


def test_an_automatically_excluded_run_says_why_and_offers_operators_a_deploy(client, operator, session) -> None:
    good_run(session)
    bad = unreachable_run(session)
    assert bad.excluded and not bad.counted
    client.force_login(operator)
    html = client.get(reverse("run_detail", args=[bad.pk])).content.decode()
    assert "Excluded: this run does not count." in html
    assert bad.excluded_reason.startswith("target unreachable")
    assert f'<span id="excluded-reason">{bad.excluded_reason}</span>' in html
    assert "Excluded automatically on" in html
    # The offer: a deploy of the newest revision (r2, the last listed), posted to the session's deploy URL.
    deploy = html[html.index('id="unreachable-deploy-form"') :]
    deploy = deploy[: deploy.index("</form>")]
    assert f'action="{reverse("operate_deploy", args=[session.slug])}"' in html
    assert 'name="revision" value="r2"' in deploy
    assert 'id="unreachable-deploy">Deploy r2</button>' in deploy
    assert 'id="unreachable-run-cycle"' in deploy
    # and the way back in
    assert 'id="run-include"' in html and 'id="run-exclude"' not in html


def test_viewers_read_the_reason_but_get_no_form(client, viewer, session) -> None:
    bad = unreachable_run(session)
    client.force_login(viewer)
    html = client.get(reverse("run_detail", args=[bad.pk])).content.decode()
    assert "Excluded: this run does not count." in html and bad.excluded_reason in html
    assert "it needs a deploy (an operator's) before the tests can run again" in html
    for marker in ('id="unreachable-deploy-form"', 'id="run-include"', 'id="run-exclude"', 'name="reason"'):
        assert marker not in html, marker


@pytest.mark.parametrize("role", ["viewer", "engineer"])
def test_only_operators_and_admins_see_exclude(client, request, role, session) -> None:
    run = good_run(session)
    client.force_login(request.getfixturevalue(role))
    assert 'id="run-exclude"' not in client.get(reverse("run_detail", args=[run.pk])).content.decode()


@pytest.mark.parametrize("role", ["operator", "admin_user"])
def test_operators_and_admins_see_exclude_with_a_required_reason(client, request, role, session) -> None:
    run = good_run(session)
    client.force_login(request.getfixturevalue(role))
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'id="run-exclude"' in html and 'id="run-include"' not in html
    assert re.search(r'<input type="text" name="reason" maxlength="500" required[^>]*id="exclude-reason"', html)


def test_exclude_then_include_by_plain_post(client, operator, session) -> None:
    run = good_run(session)
    client.force_login(operator)
    response = client.post(reverse("operate_run_exclude", args=[run.pk]), {"reason": "  staging was  down "})
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    run.refresh_from_db()
    assert run.excluded and not run.counted and run.excluded_reason == "staging was down"
    assert run.excluded_by == operator
    html = client.get(run.get_absolute_url()).content.decode()
    assert "Excluded by <strong>otto</strong> on" in html and "staging was down" in html
    assert '<span class="badge excluded" title="Excluded: staging was down">excluded</span>' in html

    response = client.post(reverse("operate_run_include", args=[run.pk]), {"reason": "it was up after all"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert not run.excluded and run.counted and run.excluded_by is None
    html = client.get(run.get_absolute_url()).content.decode()
    assert "does not count" not in html and 'id="run-exclude"' in html
    events = list(SessionEvent.objects.filter(session=session).order_by("id").values_list("action", "user", "run"))
    assert events == [("excluded", operator.pk, run.pk), ("included", operator.pk, run.pk)]


def test_exclude_through_htmx_redirects_the_page(client, operator, session) -> None:
    run = good_run(session)
    client.force_login(operator)
    response = client.post(reverse("operate_run_exclude", args=[run.pk]), {"reason": "flaky network"}, headers=HX)
    assert response.status_code == 200 and response["HX-Redirect"] == run.get_absolute_url()
    assert TestRun.objects.get(pk=run.pk).excluded


def test_an_exclusion_without_a_reason_is_refused_naming_the_field(client, operator, session) -> None:
    run = good_run(session)
    client.force_login(operator)
    url = reverse("operate_run_exclude", args=[run.pk])
    plain = client.post(url, {"reason": "   "})
    assert plain.status_code == 400
    html = plain.content.decode()
    assert "<h2>Not excluded</h2>" in html and "reason: say why the run is excluded" in html
    assert f'href="{run.get_absolute_url()}"' in html  # a way back
    hx = client.post(url, {}, headers=HX)
    assert hx.status_code == 200  # htmx swaps the message into the form's slot
    assert 'data-status="400"' in hx.content.decode() and "reason: say why" in hx.content.decode()
    assert not TestRun.objects.get(pk=run.pk).excluded
    assert not SessionEvent.objects.exists()


def test_a_live_run_cannot_be_excluded_and_including_a_counted_run_says_so(client, operator, session) -> None:
    live = TestRun.objects.create(
        session=session, cycle=resolve_cycle(session, None), environment=session.environment,
        status=WorkStatus.RUNNING, source=TestRun.Source.UI, started_at=timezone.now(),
    )  # fmt: skip
    client.force_login(operator)
    assert 'id="run-exclude"' not in client.get(live.get_absolute_url()).content.decode()
    response = client.post(reverse("operate_run_exclude", args=[live.pk]), {"reason": "no"})
    assert response.status_code == 400 and "has not ended yet" in response.content.decode()
    run = good_run(session)
    response = client.post(reverse("operate_run_include", args=[run.pk]), {})
    assert response.status_code == 400 and f"run {run.pk} is not excluded" in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "engineer"])
def test_viewers_and_engineers_get_403(client, request, role, session) -> None:
    run = good_run(session)
    client.force_login(request.getfixturevalue(role))
    for name in ("operate_run_exclude", "operate_run_include"):
        assert client.post(reverse(name, args=[run.pk]), {"reason": "x"}).status_code == 403
    assert not TestRun.objects.get(pk=run.pk).excluded


def test_an_incomplete_run_says_it_does_not_count(client, viewer, session) -> None:
    run = stored_run(session, {"test_login": "passed", "test_chat": "failed"}, status=WorkStatus.CANCELLED)
    assert run.incomplete and not run.counted
    client.force_login(viewer)
    html = client.get(run.get_absolute_url()).content.decode()
    assert 'id="run-incomplete"' in html and "Incomplete: this run does not count." in html
    assert "(cancelled)" in html


# -- the session page ------------------------------------------------------------------------------------------


def test_the_session_page_marks_runs_that_do_not_count_and_lists_the_activity(client, operator, session) -> None:
    good = good_run(session)
    bad = unreachable_run(session)
    cancelled = stored_run(session, {"test_login": "passed"}, status=WorkStatus.CANCELLED)
    counting.exclude_run(good, "a <b>bad</b> day", operator)
    counting.include_run(good, operator, "fine after all")
    client.force_login(operator)
    html = client.get(session.get_absolute_url()).content.decode()
    assert headline(html) == str(good.pk)  # never the excluded or the cancelled run, though they are later
    # the runs table: both marked, with the reason
    row = html[html.index(f'data-run="{bad.pk}"') :]
    row = row[: row.index("</tr>")]
    assert 'class="badge excluded"' in row and "target unreachable" in row
    row = html[html.index(f'data-run="{cancelled.pk}"') :]
    row = row[: row.index("</tr>")]
    assert 'class="badge incomplete"' in row and "Does not count" in row
    # the activity, newest first, with links, escaped
    activity = html[html.index('id="activity"') :]
    activity = activity[: activity.index("</section>")]
    actions = re.findall(r'data-action="(\w+)"', activity)
    assert actions == ["included", "excluded", "excluded"]
    assert f'href="{reverse("run_detail", args=[good.pk])}"' in activity
    assert f'href="{reverse("run_detail", args=[bad.pk])}"' in activity
    assert "by otto" in activity and "automatically" in activity
    assert "a &lt;b&gt;bad&lt;/b&gt; day" in activity and "<b>bad</b>" not in activity
    assert "fine after all" in activity


def test_with_no_counted_run_the_headline_says_so(client, viewer, operator, session) -> None:
    run = good_run(session)
    unreachable_run(session)
    client.force_login(viewer)
    assert headline(client.get(session.get_absolute_url()).content.decode()) == str(run.pk)
    counting.exclude_run(run, "wrong build", operator)
    html = client.get(session.get_absolute_url()).content.decode()
    assert headline(html) == ""
    assert 'id="no-counted-run">no counted run yet<' in html
    lists = client.get(reverse("sessions_list")).content.decode()
    assert "no counted run yet" in lists


def test_a_headline_left_on_an_uncounted_run_is_not_shown(client, viewer, session) -> None:
    """Whatever left ``latest_run`` on an excluded run (an older writer), the cards never show it."""
    run = good_run(session)
    bad = unreachable_run(session)
    LoopSession.objects.filter(pk=session.pk).update(latest_run=bad)
    client.force_login(viewer)
    html = client.get(session.get_absolute_url()).content.decode()
    assert headline(html) == "" and "no counted run yet" in html
    assert run.counted


def test_deleting_the_headline_run_never_makes_an_excluded_run_the_headline(client, viewer, session) -> None:
    first = good_run(session)
    second = good_run(session)
    unreachable_run(session)  # the newest run, excluded by itself
    delete_runs(TestRun.objects.filter(pk=second.pk))
    session.refresh_from_db()
    assert session.latest_run_id == first.pk
    client.force_login(viewer)
    assert headline(client.get(session.get_absolute_url()).content.decode()) == str(first.pk)


def test_an_exclusion_by_nobody_in_particular_is_not_called_automatic(client, viewer, session) -> None:
    """A script (``manage.py run exclude`` without --user) or a deleted user: no name, and not "automatically"."""
    run = good_run(session)
    counting.exclude_run(run, "set aside from a script", None)
    client.force_login(viewer)
    banner = client.get(run.get_absolute_url()).content.decode()
    banner = banner[banner.index('id="run-excluded"') :]
    banner = banner[: banner.index("</section>")]
    assert "set aside from a script" in banner and "Excluded on " in banner
    assert "automatically" not in banner and "Excluded by" not in banner
