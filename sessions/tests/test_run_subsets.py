"""Run what you mean: a marker or keyword expression, the P1 tests, a signature's tests; runs named by what they ran.

Server side (no worker): what a request queues, what it refuses and why, the command a worker would
build (``RunExecution.command``), the API, the CLI and the pages. One test at the end runs a marker
subset of a tiny suite on a real worker.
"""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from sessions.admin import EnvironmentForm
from sessions.models import (
    Deployment,
    Environment,
    FailureSignature,
    LoopSession,
    TestCase,
    TestResult,
    TestRun,
    WorkStatus,
)
from sessions.services.ingestion.cycles import resolve_cycle
from sessions.tests.test_operate_views import api, finished_run
from sessions.tests.test_tasks_integration import LINE_SEPARATORS, ended_run, make_session, on_worker, write_suite
from sessions.tests.worker import celery_worker, running_worker  # noqa: F401 - the fixtures
from sessions.work import queueing, run_execution
from sessions.work.errors import Refused

HX = {"HX-Request": "true"}


@pytest.fixture
def session(db) -> LoopSession:
    env = Environment.objects.create(
        name="staging",
        working_dir="examples/staging",
        deploy_command=["{python}", "deploy.py", "--revision", "{revision}"],
        test_command=["{python}", "-m", "pytest", "tests"],
        revisions=[{"revision": "r1", "commit": ""}, {"revision": "r7", "commit": ""}],
        default_revision="r1",
    )
    session = LoopSession.objects.create(environment=env, title="Golden path", slug="golden")
    Deployment.objects.create(
        environment=env, cycle=resolve_cycle(session, None), revision="r7",
        status=WorkStatus.SUCCEEDED, finished_at=timezone.now(),
    )  # fmt: skip
    return session


def execution_of(run: TestRun) -> run_execution.RunExecution:
    """What a worker would do with this run (nothing is started here)."""
    return run_execution.RunExecution(TestRun.objects.select_related("environment", "deployment").get(pk=run.pk))


def command_of(run: TestRun) -> list[str]:
    """The argument list a worker would start for this run (built, not run)."""
    return execution_of(run).command({})


def subset_part(args: list[str]) -> list[str]:
    """What follows the environment's own command, up to where the results go."""
    start = args.index("tests") + 1
    return args[start : args.index("--report-log")]


# -- what a marker or keyword may be -------------------------------------------------------------------------------


HOSTILE = [
    "-x",
    "--co",
    "  --collect-only",
    "-",
    "@args.txt",
    "p1\u2028--debug=f",
    "p1\x00",
    "p1\u202e",  # a bidi override: the page would show something else than what runs
    *(f"p1{sep}--debug=f" for sep in LINE_SEPARATORS),
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["marker", "keyword"])
def test_an_expression_that_could_become_an_option_is_refused_naming_the_field(session, field, value) -> None:
    with pytest.raises(Refused) as refused:
        queueing.request_tests(session, **{field: value})
    assert refused.value.status == 400 and str(refused.value).startswith(f"{field} ")
    assert not TestRun.objects.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "marker is empty"),
        ("   ", "marker is empty"),
        ("p" * 201, "marker is 201 characters long; at most 200"),
        ("-x", "marker must not start with '-' (it would read as an option)"),
        ("@f", "marker must not start with '@' (it would read as an argument file)"),
        ("p1\u2028--debug=f", "marker holds a control character or line separator (U+2028 at position 2)"),
        (12, "marker must be text"),
    ],
)
def test_refusals_say_what_was_wrong(session, value, message) -> None:
    with pytest.raises(Refused, match=re.escape(message)):
        queueing.request_tests(session, marker=value)


def test_an_accepted_marker_reaches_the_command_as_exactly_one_argument(session) -> None:
    run = queueing.request_tests(session, marker="  p1 and not slow ")
    assert run.scope == TestRun.Scope.SUBSET and run.selection == [] and run.rerun_of is None
    assert run.marker == "p1 and not slow" and run.keyword == ""
    assert run.label == "marker p1 and not slow on r7"
    args = command_of(run)
    assert subset_part(args) == ["-m", "p1 and not slow"]
    assert args.count("p1 and not slow") == 1


def test_placeholders_typed_by_a_user_stay_text(session) -> None:
    run = queueing.request_tests(session, keyword="{python} or {revision}")
    assert subset_part(command_of(run)) == ["-k", "{python} or {revision}"]


def test_marker_and_keyword_together_follow_the_environments_templates(session) -> None:
    env = session.environment
    env.marker_args = ["--markers-expr={marker}"]
    env.keyword_args = ["-k", "{keyword}", "--strict-markers"]
    env.save()
    run = queueing.request_tests(session, marker="p1", keyword="login or chat")
    assert run.label == "marker p1, keyword login or chat on r7"
    assert subset_part(command_of(run)) == ["--markers-expr=p1", "-k", "login or chat", "--strict-markers"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ([], "environment staging: marker_args is empty: this test command cannot run a marker subset"),
        (["-m"], "marker_args must hold {marker} in exactly one argument"),
        (["-m", "{marker}", "{marker}"], "marker_args must hold {marker} in exactly one argument"),
        (["-m", 5], "marker_args: every argument must be a string"),
    ],
)
def test_an_environment_without_a_usable_template_refuses_the_subset(session, template, message) -> None:
    session.environment.marker_args = template
    session.environment.save()
    with pytest.raises(Refused) as refused:
        queueing.request_tests(session, marker="p1")
    assert refused.value.status == 400 and message in str(refused.value)
    assert not TestRun.objects.exists()


@pytest.mark.parametrize(
    ("marker_args", "error"),
    [
        ('["-m"]', "marker_args must hold {marker} in exactly one argument"),
        ('"-m {marker}"', "Marker arguments must be a JSON list of strings"),
        ("[]", None),
        ('["-m", "{marker}"]', None),
    ],
)
def test_the_admin_checks_the_subset_templates(db, marker_args, error) -> None:
    form = EnvironmentForm(
        data={
            "name": "checked", "timeout_s": 60, "deploy_timeout_s": 60, "deploy_command": "[]",
            "test_command": '["pytest"]', "env_vars": "{}", "revisions": "[]", "metric_targets": "{}",
            "marker_args": marker_args, "keyword_args": '["-k", "{keyword}"]',
            "health_check": "[]", "health_check_timeout_s": 30, "unreachable_share": 90,
        }
    )  # fmt: skip
    assert form.is_valid() is (error is None)
    if error:
        assert error in " ".join(form.errors["marker_args"])


def test_a_template_removed_after_queueing_ends_the_run_with_a_clear_message(session) -> None:
    run = queueing.request_tests(session, marker="p1")
    Environment.objects.filter(pk=session.environment_id).update(marker_args=[])
    with pytest.raises(run_execution.runners.CommandError, match="marker_args is empty"):
        command_of(run)


@pytest.mark.parametrize(
    "extra",
    [{"scope": TestRun.Scope.FAILED}, {"scope": TestRun.Scope.SELECTED, "case_ids": [1]}, {"subset": "p1"}],
)
def test_an_expression_does_not_combine_with_a_rerun_or_another_subset(session, extra) -> None:
    rerun_of = finished_run(session, {"test_a": "failed"})
    with pytest.raises(Refused) as refused:
        queueing.request_tests(session, marker="p1", rerun_of=rerun_of if "scope" in extra else None, **extra)
    assert refused.value.status == 400


def test_scope_subset_cannot_be_asked_for_without_an_expression(session) -> None:
    with pytest.raises(Refused, match="scope 'subset' is what a marker or keyword expression runs"):
        queueing.request_tests(session, scope=TestRun.Scope.SUBSET)


# -- subsets by stored ids: the P1 tests, a signature's tests ------------------------------------------------------


def add_cases(env: Environment, priorities: dict[str, str]) -> dict[str, TestCase]:
    return {
        name: TestCase.objects.create(
            environment=env, nodeid=f"tests/test_e2e.py::{name}", nodeid_hash=name, name=name, priority=priority
        )
        for name, priority in priorities.items()
    }


def test_the_p1_tests_run_as_a_selection_of_stored_ids(session) -> None:
    cases = add_cases(session.environment, {"test_login": "P1", "test_chat": "P1", "test_theme": "P3", "test_x": ""})
    run = queueing.request_tests(session, subset="p1")
    assert run.scope == TestRun.Scope.SELECTED and run.rerun_of is None
    assert run.selection == [cases["test_login"].pk, cases["test_chat"].pk]
    assert run.label == "P1 on r7" and run.properties == {"subset": "p1"}
    execution = execution_of(run)
    assert subset_part(execution.command({})) == ["-p", "loopdash_select"]  # node ids go through a file, never argv
    selected = json.loads((execution.folder / "selection.json").read_text())
    assert selected == ["tests/test_e2e.py::test_login", "tests/test_e2e.py::test_chat"]


def test_no_p1_test_is_refused(session) -> None:
    add_cases(session.environment, {"test_theme": "P3"})
    with pytest.raises(Refused, match="environment staging has no P1 test"):
        queueing.request_tests(session, subset="p1")


def test_a_signatures_tests_are_those_it_hit_in_its_latest_run(session) -> None:
    finished_run(session, {"test_chat": "failed", "test_stream": "failed", "test_login": "passed"})
    latest = finished_run(session, {"test_chat": "failed", "test_stream": "passed", "test_login": "passed"})
    signature = FailureSignature.objects.get()
    assert signature.last_seen_run_id == latest.pk
    run = queueing.request_tests(session, subset="signature", signature=signature.pk)
    chat = TestResult.objects.get(run=latest, case__name="test_chat").case_id
    assert run.scope == TestRun.Scope.SELECTED and run.selection == [chat]
    assert run.label == f"tests of signature #{signature.pk} on r7"
    assert run.properties == {"subset": "signature", "signature": signature.pk}


@pytest.mark.parametrize(("value", "status"), [(987654, 404), ("x", 400), (None, 400), (True, 400)])
def test_an_unknown_signature_is_refused(session, value, status) -> None:
    with pytest.raises(Refused) as refused:
        queueing.request_tests(session, subset="signature", signature=value)
    assert refused.value.status == status and "signature" in str(refused.value)


def test_a_signature_of_another_environment_is_not_found(session) -> None:
    other_env = Environment.objects.create(name="other", test_command=["true"])
    other = LoopSession.objects.create(environment=other_env, title="Other", slug="other")
    finished_run(other, {"test_chat": "failed"})
    with pytest.raises(Refused) as refused:
        queueing.request_tests(session, subset="signature", signature=FailureSignature.objects.get().pk)
    assert refused.value.status == 404


def test_an_unknown_subset_is_refused(session) -> None:
    with pytest.raises(Refused, match="subset must be one of p1, signature, tests, got 'p2'"):
        queueing.request_tests(session, subset="p2")


# -- run labels ------------------------------------------------------------------------------------------------------


def test_runs_are_named_by_what_they_ran(session) -> None:
    assert queueing.request_tests(session).label == "full suite on r7"
    first = finished_run(session, {"test_a": "failed", "test_b": "error", "test_c": "passed"})
    failed = queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.FAILED)
    assert failed.label == f"rerun of {first.pk} failed (2 tests)"
    one = TestResult.objects.filter(run=first, outcome="failed").values_list("case_id", flat=True)
    chosen = queueing.request_tests(session, rerun_of=first, scope=TestRun.Scope.SELECTED, case_ids=list(one))
    assert chosen.label == f"rerun of {first.pk} selected (1 test)"
    assert queueing.request_tests(session, rerun_of=first).label == f"rerun of {first.pk} (full suite)"
    assert queueing.request_tests(session, keyword="login").label == "keyword login on r7"


def test_a_run_before_any_deploy_names_no_revision(session) -> None:
    Deployment.objects.all().delete()
    assert queueing.request_tests(session).label == "full suite"


def test_a_long_expression_keeps_the_label_within_its_column(session) -> None:
    run = queueing.request_tests(session, marker="p" * 200)
    assert len(run.label) == 200 and run.label.endswith("… on r7")


def test_the_run_page_title_and_the_session_page_show_the_label(client, operator, session) -> None:
    client.force_login(operator)
    run = queueing.request_tests(session, marker="p1")
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f"<title>Run {run.pk} · marker p1 on r7 · Golden path" in page and 'id="run-marker">p1<' in page
    assert "marker p1 on r7" in client.get(f"/sessions/{session.slug}/").content.decode()


# -- the API and the CLI ---------------------------------------------------------------------------------------------


def test_the_api_runs_a_marker_subset(client, operator, session) -> None:
    response = api(client, operator, session.slug, {"action": "tests", "marker": "p1", "keyword": "login"})
    assert response.status_code == 202
    run = TestRun.objects.get(pk=response.json()["run"])
    assert (run.marker, run.keyword, run.scope, run.source) == ("p1", "login", "subset", TestRun.Source.API)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "tests", "marker": "-x"}, "marker must not start with '-'"),
        ({"action": "tests", "keyword": "--co"}, "keyword must not start with '-'"),
        ({"action": "tests", "marker": "p1\u2028--debug=f"}, "marker holds a control character"),
        ({"action": "tests", "marker": ""}, "marker is empty"),
        ({"action": "tests", "keyword": 5}, "keyword must be text"),
        ({"action": "tests", "marker": "p1", "rerun": 1}, "they do not go with rerun"),
        ({"action": "tests", "marker": "p1", "scope": "failed"}, "they do not go with scope"),
        ({"action": "deploy", "marker": "p1"}, "apply to action 'tests'"),
        ({"action": "cycle", "keyword": "x"}, "apply to action 'tests'"),
    ],
)
def test_the_api_refuses_a_bad_subset_naming_the_field(client, operator, session, payload, message) -> None:
    response = api(client, operator, session.slug, payload)
    assert response.status_code == 400 and message in response.json()["error"]
    assert not TestRun.objects.exists()


def test_the_cli_runs_a_marker_or_keyword_subset(session) -> None:
    out = StringIO()
    call_command("trigger", "tests", "--session", session.slug, "--marker", "p1 and not slow", stdout=out)
    run = TestRun.objects.get()
    assert out.getvalue() == f"run {run.pk}\n" and run.marker == "p1 and not slow" and run.source == "cli"
    call_command("trigger", "tests", "--session", session.slug, "--keyword", "login", stdout=StringIO())
    assert TestRun.objects.filter(keyword="login").exists()
    with pytest.raises(CommandError, match="marker must not start with '-'"):
        call_command("trigger", "tests", "--session", session.slug, "--marker=-x", stdout=StringIO())


# -- the pages -------------------------------------------------------------------------------------------------------


def test_operators_see_the_subset_form_and_viewers_do_not(client, operator, viewer, session) -> None:
    client.force_login(operator)
    page = client.get(f"/sessions/{session.slug}/").content.decode()
    assert 'id="operate-subset-form"' in page and 'name="marker"' in page and 'id="operate-run-p1"' in page
    client.force_login(viewer)
    assert 'id="operate-subset-form"' not in client.get(f"/sessions/{session.slug}/").content.decode()


def test_the_subset_form_queues_a_marker_run_and_the_p1_button_the_p1_tests(client, operator, session) -> None:
    client.force_login(operator)
    response = client.post(f"/sessions/{session.slug}/run-subset/", {"marker": "p1", "keyword": ""})
    run = TestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.marker == "p1" and run.keyword == "" and run.triggered_by == operator
    add_cases(session.environment, {"test_login": "P1"})
    response = client.post(f"/sessions/{session.slug}/run-subset/", {"marker": "", "subset": "p1"}, headers=HX)
    p1 = TestRun.objects.get(label="P1 on r7")
    assert response.status_code == 200 and response["HX-Redirect"] == p1.get_absolute_url()


@pytest.mark.parametrize(
    ("post", "message"),
    [
        ({"marker": " ", "keyword": ""}, "marker or keyword: give an expression"),
        ({"marker": "-x"}, "marker must not start with &#x27;-&#x27;"),
        ({"marker": "p1", "subset": "p1"}, "choose one subset"),
    ],
)
def test_the_subset_form_shows_a_refusal_naming_the_field(client, operator, session, post, message) -> None:
    client.force_login(operator)
    response = client.post(f"/sessions/{session.slug}/run-subset/", post)
    assert response.status_code == 400 and message in response.content.decode()
    htmx = client.post(f"/sessions/{session.slug}/run-subset/", post, headers=HX)
    assert htmx.status_code == 200 and message in htmx.content.decode()
    assert not TestRun.objects.exists()


def test_the_signature_page_runs_its_tests_in_the_session_it_was_last_seen(client, operator, viewer, session) -> None:
    latest = finished_run(session, {"test_chat": "failed", "test_login": "passed"})
    signature = FailureSignature.objects.get()
    client.force_login(viewer)
    assert 'id="signature-run-tests"' not in client.get(f"/signatures/{signature.pk}/").content.decode()
    client.force_login(operator)
    assert 'id="signature-run-tests"' in client.get(f"/signatures/{signature.pk}/").content.decode()
    response = client.post(f"/signatures/{signature.pk}/run-tests/")
    run = TestRun.objects.exclude(pk=latest.pk).get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.session == session and run.label == f"tests of signature #{signature.pk} on r7"
    assert run.selection == [TestResult.objects.get(run=latest, case__name="test_chat").case_id]


# -- on a real worker ------------------------------------------------------------------------------------------------

MARKED_SUITE = """
import pytest

@pytest.mark.p1
def test_login():
    pass

@pytest.mark.p1
def test_chat():
    assert False, "chat is down"

@pytest.mark.p1
@pytest.mark.slow
def test_export():
    pass

def test_theme():
    pass
"""
MARKERS_CONFTEST = """
def pytest_configure(config):
    config.addinivalue_line("markers", "p1: a P1 test")
    config.addinivalue_line("markers", "slow: a slow test")
"""


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@on_worker
def test_a_marker_subset_runs_exactly_the_marked_tests_on_a_worker(tmp_path) -> None:
    session = make_session("marked", write_suite(tmp_path, conftest=MARKERS_CONFTEST, test_marked=MARKED_SUITE))
    run = ended_run(queueing.request_tests(session, marker="p1 and not slow").pk)
    assert run.status == WorkStatus.FINISHED, run.log_tail
    ran = sorted(TestResult.objects.filter(run=run).values_list("case__name", "outcome"))
    assert ran == [("test_chat", "failed"), ("test_login", "passed")]
    assert run.command.count("p1 and not slow") == 1 and run.label == "marker p1 and not slow"
    at = run.command.index("p1 and not slow")
    assert run.command[at - 1 : at + 2] == ["-m", "p1 and not slow", "--report-log"]
    assert run.scope == TestRun.Scope.SUBSET  # never taken for the cycle's full run (trends, criteria, compare)
