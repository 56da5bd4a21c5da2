"""Who may do what, for every POST endpoint the URL resolver knows; CSRF on HTMX posts; escaping everywhere.

The endpoints are enumerated from the resolver, not listed by hand, so a new one cannot be forgotten:
an endpoint this file does not know how to call (no payload, an unknown URL parameter, a view module
it cannot classify) fails the walk until someone says how it should behave.

- anonymous: a redirect to the login page;
- viewer: 403;
- engineer: annotation endpoints succeed, operate endpoints (deploy, run, rerun, cancel) are 403;
- operator and admin: everything succeeds; an operate request that makes no sense for the data
  (cancel a run that has ended) may be refused, with a 4xx that is not 403.

Django's admin (its own staff permissions) and the login/logout views (public by design) are outside
the walk; the token API is walked with bearer tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from sessions import roles
from sessions.models import (
    Analysis,
    Deployment,
    Environment,
    FailureSignature,
    SuccessCriterion,
    TestCase,
    TestRun,
    WorkStatus,
)
from sessions.services.tokens import issue_token
from sessions.tests.test_pages import Case, ingest, junit_xml, triage_world

pytestmark = pytest.mark.django_db

ANNOTATE_MODULE = "sessions.views"
OPERATE_MODULE = "sessions.views_operate"
# Confirm a fix by reruns (views_fix_confirmation): it queues runs, so operators and admins only, like views_operate.
OPERATE_MODULES = (OPERATE_MODULE, "sessions.views_fix_confirmation")
API_MODULE = "sessions.api"
QUARANTINE_MODULE = "sessions.views_quarantine"  # quarantine a test or a signature's tests: engineers and up
DISCUSSION_MODULE = "sessions.views_discussion"  # assign a signature, comment on it: engineers and up
SETUP_MODULE = "sessions.views_setup"  # new sessions and tokens: engineers and up; environments: admins only
ADMIN_ONLY = {"environment_create", "environment_save"}
OUTSIDE = ("admin/", "accounts/")  # Django's own permission checks and the public auth views


@dataclass(frozen=True)
class Endpoint:
    name: str
    route: str  # "runs/<int:pk>/rerun/"
    module: str


def walk(patterns: list, prefix: str = "") -> list[Endpoint]:
    found = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            found += walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            callback = entry.callback
            module = getattr(callback, "__module__", "")
            found.append(Endpoint(entry.name or "", prefix + str(entry.pattern), module))
    return found


ALL = [e for e in walk(get_resolver().url_patterns) if not e.route.startswith(OUTSIDE)]


# -- the data each endpoint acts on ----------------------------------------------------------------------


def world() -> dict:
    """A session with a runnable environment, runs, a signature with an analysis, criteria, deployments."""
    data = triage_world(10, session="perm-loop")
    env: Environment = data["session"].environment
    env.deploy_command = ["python", "-c", "print('deployed')"]
    env.test_command = ["python", "-m", "pytest"]
    env.revisions = [{"revision": "r1", "commit": "aaaaaaa1111", "message": "first"}]
    env.default_revision = "r1"
    env.save()
    analysis: Analysis = data["analysis"]
    analysis.refresh_from_db()
    data["step"] = analysis.steps.order_by("position").first()
    data["criterion"] = SuccessCriterion.objects.filter(session=data["session"], kind="manual").first()
    others = FailureSignature.objects.filter(environment=env, merged_into__isnull=True).exclude(pk=data["signature"].pk)
    data["other_signature"] = others.order_by("pk").first()
    return data


def url_for(endpoint: Endpoint, data: dict) -> str:
    """Fill the route's parameters from the world: the prefix says which kind of object a ``pk`` is."""
    kinds = {
        "runs": data["second"].pk,
        "signatures": data["signature"].pk,
        "analyses": data["analysis"].pk,
        "criteria": data["criterion"].pk,
        "tests": data["case"].pk,
        "deployments": data["deployment"].pk,
    }

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name == "slug":
            return data["session"].slug
        if name == "name":
            return data["session"].environment.name
        if name == "step":
            return str(data["step"].pk)
        if name == "other":
            return str(data["first"].pk)
        if name == "pk":
            head = endpoint.route.removeprefix("api/v1/").split("/", 1)[0]
            assert head in kinds, f"{endpoint.name}: no object for a pk under {head}/ — teach url_for"
            return str(kinds[head])
        raise AssertionError(f"{endpoint.name}: unknown URL parameter {name!r} — teach url_for")

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, endpoint.route)


def payload(endpoint: Endpoint, data: dict) -> dict:
    """A valid request body for each annotation endpoint; operate endpoints get theirs too."""
    analysis: Analysis = data["analysis"]
    analysis.refresh_from_db()
    signature: FailureSignature = data["signature"]
    signature.refresh_from_db()
    version = {"version": analysis.version}
    bodies: dict[str, Callable[[], dict]] = {
        "signature_title": lambda: {"title": "WebSocket 1011 on connect", "version": signature.version},
        "signature_status": lambda: {"status": "investigating", "version": signature.version},
        "signature_merge": lambda: {"target": data["other_signature"].pk},
        "analysis_create": lambda: {"problem": "Timeouts on streaming"},
        "analysis_edit": lambda: {**version, "root_cause": "An enum in a log line", "status": "confirmed"},
        "step_add": lambda: {**version, "question": "Why now?", "answer": "A new log call"},
        "step_edit": lambda: {**version, "question": "Why 1011, really?", "answer": "The handler raised"},
        "step_move": lambda: {**version, "direction": "down"},
        "step_delete": lambda: version,
        "analysis_delete": lambda: version,
        "fix_add": lambda: {**version, "sha": "0123456789abcdef", "message": "fix: log the state's name"},
        "criterion_add": lambda: {"text": "No 1011 in the logs", "kind": "manual"},
        "criterion_edit": lambda: {"text": "No 1011 anywhere", "kind": "manual"},
        "criterion_tick": lambda: {"done": "1"},
        "criterion_delete": dict,
        # operate (another engineer's views): plain requests an operator would send
        "operate_deploy": lambda: {"revision": "r1"},
        "operate_run_cycle": lambda: {"revision": "r1"},
        "operate_run_tests": dict,
        "operate_run_subset": lambda: {"marker": "p1"},
        "operate_signature_run_tests": dict,
        # the world's fix is pending, so an operator's request is refused with 409 (only a deployed fix is confirmed)
        "operate_fix_confirm": lambda: {"fix": analysis.fixes.order_by("pk").first().pk, "runs": "2"},
        "operate_rerun": lambda: {"scope": "failed"},
        "operate_run_cancel": dict,
        "operate_deployment_cancel": dict,
        # runs that count: an operator sets a run aside with a reason; include of a counted run is a 400
        "operate_run_exclude": lambda: {"reason": "staging was down during this run"},
        "operate_run_include": lambda: {"reason": "it was fine after all"},
        # quarantine (views_quarantine): engineers and up set a test, or a signature's tests, aside until a date
        "test_quarantine": lambda: {"reason": "known flaky", "until": _tomorrow()},
        "test_quarantine_end": lambda: _quarantined(data),
        "signature_quarantine": lambda: {"reason": "one cause, fix under way", "until": _tomorrow()},
        # owners and discussion (views_discussion): engineers and up
        "signature_assign": lambda: {"assignee": "me"},
        "signature_comment": lambda: {"body": "Seen on **r7** too"},
        # in-app set-up (views_setup): engineers and up start sessions and issue themselves a token
        "session_create": lambda: {"title": "Permissions push", "environment": data["session"].environment.name},
        "session_token": dict,
        "environment_create": lambda: {"name": "perm-new-env", "test_command": "python\n-m\npytest", "timeout_s": "60"},
        "environment_save": lambda: {"test_command": "python\n-m\npytest", "timeout_s": "60"},
    }
    assert endpoint.name in bodies, f"{endpoint.name} ({endpoint.route}): add a payload to test_permissions"
    return bodies[endpoint.name]()


def _tomorrow() -> str:
    from datetime import timedelta

    from django.utils import timezone

    return (timezone.localdate() + timedelta(days=1)).isoformat()


def _quarantined(data: dict) -> dict:
    """The world's test, quarantined (so that there is one to end); no body needed."""
    from sessions.services import quarantine

    quarantine.quarantine_case(data["case"], "flaky", _tomorrow(), None)
    return {}


def is_post_only(endpoint: Endpoint, client: Client, data: dict) -> bool:
    """GET answers 405 on a POST-only view (an admin asks, so no permission check gets in the way)."""
    return client.get(url_for(endpoint, data)).status_code == 405


@pytest.fixture
def users(viewer, engineer, operator, admin_user) -> dict:
    return {"viewer": viewer, "engineer": engineer, "operator": operator, "admin": admin_user}


def in_savepoint(check: Callable[[], None]) -> None:
    """Run a request against fresh data and roll it back: one endpoint's write cannot hide another's."""
    with transaction.atomic():
        check()
        transaction.set_rollback(True)


_CLASSIFIED: dict[str, tuple[list[Endpoint], list[Endpoint]]] = {}


def session_endpoints(client: Client) -> tuple[list[Endpoint], list[Endpoint]]:
    """(POST-only endpoints of the pages, GET endpoints of the pages): classified by asking each one once."""
    if "pages" in _CLASSIFIED:
        return _CLASSIFIED["pages"]
    posts, gets = [], []
    for endpoint in ALL:
        if endpoint.module.startswith(API_MODULE):  # sessions.api and sessions.api_<topic>: bearer tokens
            continue

        def classify(endpoint: Endpoint = endpoint) -> None:
            data = world()
            (posts if is_post_only(endpoint, client, data) else gets).append(endpoint)

        in_savepoint(classify)
    _CLASSIFIED["pages"] = posts, gets
    return posts, gets


def test_the_walk_finds_every_kind_of_endpoint(admin_user) -> None:
    client = Client()
    client.force_login(admin_user)
    posts, _gets = session_endpoints(client)
    names = {e.name for e in posts}
    assert {"signature_title", "step_move", "criterion_tick", "fix_add", "signature_merge"} <= names
    assert {"operate_deploy", "operate_rerun", "operate_run_cancel"} <= names
    assert {"operate_run_exclude", "operate_run_include"} <= names
    for endpoint in posts:
        assert endpoint.module in (
            ANNOTATE_MODULE,
            *OPERATE_MODULES,
            SETUP_MODULE,
            QUARANTINE_MODULE,
            DISCUSSION_MODULE,
        ), f"{endpoint.name} lives in {endpoint.module}: say who may call it in test_permissions"


@pytest.mark.parametrize("role", ["anonymous", "viewer", "engineer", "operator", "admin"])
def test_every_post_endpoint_enforces_the_roles(role: str, users: dict, admin_user) -> None:
    classifier = Client()
    classifier.force_login(admin_user)
    posts, _gets = session_endpoints(classifier)
    client = Client()
    if role != "anonymous":
        client.force_login(users[role])
    failures = []
    for endpoint in posts:

        def check(endpoint: Endpoint = endpoint) -> None:
            data = world()
            url = url_for(endpoint, data)
            response = client.post(url, payload(endpoint, data))
            status = response.status_code
            operate = endpoint.module in OPERATE_MODULES
            if endpoint.name in ADMIN_ONLY and role not in ("anonymous", "admin"):
                ok = status == 403
            elif role == "anonymous":
                ok = status == 302 and response["Location"].startswith("/accounts/login/")
            elif role == "viewer":
                ok = status == 403
            elif role == "engineer":
                ok = status == 403 if operate else status < 400
            else:
                ok = (status < 400 or (400 <= status < 500 and status != 403)) if operate else status < 400
            if not ok:
                failures.append(f"{endpoint.name} {url}: {status}")

        in_savepoint(check)
    assert not failures, f"{role}: " + "; ".join(failures)


def test_no_page_accepts_a_write_by_get_or_a_viewers_post(viewer, admin_user) -> None:
    """A GET view that also took POST would escape the walk above: a viewer's POST must never get through."""
    classifier = Client()
    classifier.force_login(admin_user)
    _posts, gets = session_endpoints(classifier)
    client = Client()
    client.force_login(viewer)
    for endpoint in gets:

        def check(endpoint: Endpoint = endpoint) -> None:
            data = world()
            status = client.post(url_for(endpoint, data), {"title": "x", "version": 1}).status_code
            assert status in (403, 405) or endpoint.name == "healthz", f"{endpoint.name}: POST answered {status}"

        in_savepoint(check)


def test_a_refused_role_is_told_who_may(viewer, engineer) -> None:
    """One decorator per capability (``roles.annotator_required``, ``roles.operator_required``)."""
    data = world()
    client = Client()
    client.force_login(viewer)
    response = client.post(reverse("criterion_add", args=[data["session"].slug]), {"text": "x", "kind": "manual"})
    assert response.status_code == 403
    assert "Only engineers, operators and admins may change triage data." in response.content.decode()
    client.force_login(engineer)
    response = client.post(reverse("operate_deploy", args=[data["session"].slug]), {"revision": "r1"})
    assert response.status_code == 403
    assert "Only operators and admins may deploy, run, rerun or cancel." in response.content.decode()


def test_an_operator_does_what_an_engineer_does_and_more(operator, engineer) -> None:
    assert roles.can_annotate(operator) and roles.can_operate(operator)
    assert roles.can_annotate(engineer) and not roles.can_operate(engineer)


# -- the token API ---------------------------------------------------------------------------------------


def test_the_api_endpoints_use_bearer_tokens(users: dict) -> None:
    api = [e for e in ALL if e.module == API_MODULE]
    assert {e.name for e in api} >= {"api_upload_run", "api_trigger"}
    data = world()
    body = junit_xml([Case("test_api_a"), Case("test_api_b", "failed", 1.0, "AssertionError: no")], suite="api")

    def upload(token: str | None, suite: str) -> int:
        from django.core.files.uploadedfile import SimpleUploadedFile

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        file = SimpleUploadedFile(f"{suite}.xml", body.replace(b'name="api"', f'name="{suite}"'.encode()))
        return (
            Client()
            .post(reverse("api_upload_run", args=[data["session"].slug]), {"file": file}, headers=headers)
            .status_code
        )

    def trigger(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = reverse("api_trigger", args=[data["session"].slug])
        return Client().post(url, {"kind": "tests"}, headers=headers).status_code

    def quarantine(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = reverse("api_quarantine", args=[data["session"].environment.name])
        body = {"test": data["case"].nodeid, "reason": "flaky", "until": _tomorrow()}
        return Client().post(url, body, content_type="application/json", headers=headers).status_code

    tokens = {role: issue_token(user) for role, user in users.items()}
    assert upload(None, "anon") == 401 and trigger(None) == 401
    assert quarantine(None) == 401 and quarantine(tokens["viewer"]) == 403
    assert quarantine(tokens["engineer"]) == 201 and quarantine(tokens["operator"]) == 200
    assert trigger(tokens["viewer"]) == 403 and trigger(tokens["engineer"]) == 403
    assert trigger(tokens["operator"]) not in (401, 403)
    assert upload(tokens["engineer"], "eng") == 201


def test_a_viewers_token_cannot_upload_results(viewer) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = world()
    token = issue_token(viewer)
    file = SimpleUploadedFile("v.xml", junit_xml([Case("test_v")], suite="viewer"))
    status = (
        Client()
        .post(
            reverse("api_upload_run", args=[data["session"].slug]),
            {"file": file},
            headers={"Authorization": f"Bearer {token}"},
        )
        .status_code
    )
    assert status == 403


# -- CSRF on HTMX posts ---------------------------------------------------------------------------------


def test_csrf_is_enforced_on_htmx_posts(engineer) -> None:
    data = world()
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    page = client.get(reverse("signature_detail", args=[data["signature"].pk]))
    token = client.cookies["csrftoken"].value
    assert '"X-CSRFToken": "' in page.content.decode()  # hx-headers on <body>
    url = reverse("signature_title", args=[data["signature"].pk])
    signature = FailureSignature.objects.get(pk=data["signature"].pk)
    body = {"title": "Renamed through htmx", "version": signature.version}
    hx = {"HX-Request": "true"}

    refused = client.post(url, body, headers=hx)
    assert refused.status_code == 403
    assert FailureSignature.objects.get(pk=signature.pk).title == signature.title

    accepted = client.post(url, body, headers={**hx, "X-CSRFToken": token})
    assert accepted.status_code == 200
    assert FailureSignature.objects.get(pk=signature.pk).title == "Renamed through htmx"
    assert 'id="signature-header"' in accepted.content.decode()


def test_csrf_is_enforced_on_plain_form_posts_too(engineer) -> None:
    data = world()
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    client.get(reverse("session_detail", args=[data["session"].slug]))
    url = reverse("criterion_add", args=[data["session"].slug])
    assert client.post(url, {"text": "x", "kind": "manual"}).status_code == 403
    token = client.cookies["csrftoken"].value
    assert client.post(url, {"text": "x", "kind": "manual", "csrfmiddlewaretoken": token}).status_code == 302


# -- a <script> in a failure message is text everywhere ------------------------------------------------------

EVIL = "<script>alert('pwned')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;"


@pytest.fixture
def evil_run() -> TestRun:
    """A JUnit file whose failure message (and so the signature's title and sample) holds a script."""
    ingest([Case("test_ok"), Case("test_ok_2")], session="evil-loop", cycle=1, label="before")
    run = ingest(
        [Case("test_evil", "failed", 1.0, f"AssertionError: {EVIL}"), Case("test_ok")],
        session="evil-loop",
        cycle=2,
        label="evil",
    )
    signature = FailureSignature.objects.get(run_counts__run=run)
    from sessions.services import triage

    analysis = triage.create_analysis(signature, None, f"The page showed {EVIL}")
    analysis.refresh_from_db()
    triage.add_step(analysis, {"version": analysis.version, "question": f"Why {EVIL}?", "answer": EVIL}, None)
    Deployment.objects.create(environment=run.environment, cycle=run.cycle, revision="r9", status=WorkStatus.SUCCEEDED)
    return run


def test_a_script_from_a_junit_file_is_escaped_on_every_page(evil_run, client, engineer) -> None:
    client.force_login(engineer)
    signature = FailureSignature.objects.get(run_counts__run=evil_run)
    case = TestCase.objects.get(nodeid__endswith="test_evil")
    pages = {
        "session": reverse("session_detail", args=["evil-loop"]),
        "run": reverse("run_detail", args=[evil_run.pk]),
        "run results": reverse("run_detail", args=[evil_run.pk]) + "?outcome=failed",
        "signature": reverse("signature_detail", args=[signature.pk]),
        "signature editing": reverse("signature_detail", args=[signature.pk]) + "?edit=title",
        "test": reverse("test_detail", args=[case.pk]),
        "compare": reverse("run_compare", args=[evil_run.pk]),
    }
    for name, url in pages.items():
        html = client.get(url).content.decode()
        assert EVIL not in html, name
        assert ESCAPED in html, name
    partial = client.get(pages["run results"], headers={"HX-Request": "true"}).content.decode()
    assert EVIL not in partial and ESCAPED in partial


def test_the_export_keeps_the_script_as_text_and_is_never_served_as_html(evil_run, client, viewer) -> None:
    client.force_login(viewer)
    response = client.get(reverse("session_export", args=["evil-loop"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    text = response.content.decode()
    # Markdown renderers pass raw HTML through: the export escapes it (a fenced sample keeps it as code),
    # so that it renders as the text it was.
    markdown_evil = EVIL.replace("<", "\\<").replace(">", "\\>")
    assert f"**Why 1**: Why {markdown_evil}?" in text
    assert f"```\nAssertionError: {EVIL}\n```" in text


def test_the_admin_shows_the_script_escaped(evil_run, client, admin_user) -> None:
    client.force_login(admin_user)
    signature = FailureSignature.objects.get(run_counts__run=evil_run)
    result = signature.results.get()
    analysis = signature.analyses.get()
    pages = [  # (url, whether the page shows the message at all)
        (reverse("admin:loop_sessions_failuresignature_changelist"), True),
        (reverse("admin:loop_sessions_failuresignature_change", args=[signature.pk]), True),
        (reverse("admin:loop_sessions_testresult_changelist"), False),  # lists ids, runs and tests
        (reverse("admin:loop_sessions_testresult_change", args=[result.pk]), True),
        (reverse("admin:loop_sessions_analysis_change", args=[analysis.pk]), True),
        (reverse("admin:loop_sessions_analysis_changelist"), True),  # the signature column
    ]
    for url, shows in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert EVIL not in html, url
        assert ("&lt;script&gt;" in html) is shows, url
