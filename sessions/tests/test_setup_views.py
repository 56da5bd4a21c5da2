"""In-app set-up: a new session from the sessions page, the empty session's "get results in" panel with a
token shown once, and the admins' environment form (lists, rows, errors naming the field)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from sessions.models import ApiToken, Environment, LoopSession
from sessions.services.tokens import authenticate_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def env() -> Environment:
    return Environment.objects.create(name="staging", test_command=["python", "-m", "pytest"])


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_engineer_creates_a_session_and_lands_on_an_empty_session_that_says_how(engineer, env) -> None:
    client = client_for(engineer)
    assert 'id="new-session"' in client.get(reverse("sessions_list")).content.decode()
    assert client.get(reverse("session_new")).status_code == 200
    response = client.post(
        reverse("session_create"),
        {
            "title": "P1 green on staging",
            "mission": "All P1 pass",
            "goal_pass_rate": "100",
            "goal_priority": "P1",
            "environment": "staging",
        },
    )
    assert response.status_code == 303 and response["Location"] == "/sessions/p1-green-on-staging/"
    session = LoopSession.objects.get(slug="p1-green-on-staging")
    assert (session.environment, session.goal_priority, session.mission) == (env, "P1", "All P1 pass")
    page = client.get(response["Location"]).content.decode()
    assert "manage.py ingest results.xml --session p1-green-on-staging" in page
    assert "http://testserver/api/v1/sessions/p1-green-on-staging/runs" in page  # the host and port served
    assert 'id="issue-token"' in page and "$LOOPDASH_TOKEN" in page


def test_the_token_is_shown_once_and_works_for_uploads(engineer, env) -> None:
    client = client_for(engineer)
    client.post(reverse("session_create"), {"title": "Loop", "environment": "staging"})
    response = client.post(reverse("session_token", args=["loop"]), headers={"HX-Request": "true"})
    assert response.status_code == 200
    page = response.content.decode()
    token = page.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert f"Bearer {token}" in page and "only now" in page
    assert authenticate_token(token, "upload") == engineer
    stored = ApiToken.objects.get(user=engineer)
    assert token not in (stored.token_hash, stored.prefix) and not stored.scope_trigger
    assert token not in client.get(reverse("session_detail", args=["loop"])).content.decode()


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"title": "", "environment": "staging"}, "title", "Title is required"),
        ({"title": "x", "environment": ""}, "environment", "choose an existing environment"),
        ({"title": "x", "environment": "nope"}, "environment", "no environment &#x27;nope&#x27;"),
        ({"title": "x", "slug": "new", "environment": "staging"}, "slug", "is a page&#x27;s address"),
        ({"title": "x", "goal_pass_rate": "150", "environment": "staging"}, "goal_pass_rate", "must be a percentage"),
    ],
)
def test_a_bad_session_form_names_the_field_and_creates_nothing(engineer, env, form, field, message) -> None:
    response = client_for(engineer).post(reverse("session_create"), form)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not LoopSession.objects.exists()


def test_viewers_cannot_create_sessions_and_only_admins_edit_environments(viewer, engineer, operator, env) -> None:
    assert (
        client_for(viewer).post(reverse("session_create"), {"title": "x", "environment": "staging"}).status_code == 403
    )
    assert 'id="new-session"' not in client_for(viewer).get(reverse("sessions_list")).content.decode()
    for user in (engineer, operator):
        client = client_for(user)
        assert client.get(reverse("environment_edit", args=["staging"])).status_code == 403
        assert (
            client.post(reverse("environment_save", args=["staging"]), {"test_command": "rm\n-rf"}).status_code == 403
        )
    assert Environment.objects.get(name="staging").test_command == ["python", "-m", "pytest"]


def environment_post(**extra: object) -> dict:
    return {
        "name": "qa",
        "description": "QA target",
        "deploy_command": "{python}\ndeploy.py\n--revision\n{revision}",
        "test_command": "{python}\n-m\npytest\ntests/e2e dir with spaces\n",
        "working_dir": "examples/staging",
        "env_vars": "TARGET=ws://127.0.0.1:9000\nMODE=a=b",
        "timeout_s": "600",
        "deploy_timeout_s": "120",
        "revision": ["r1", "r2", ""],
        "revision_commit": ["aaa", "bbb", ""],
        "revision_message": ["first", "second", ""],
        "default_revision": "r2",
        "writes_report_log": "1",
        "end_to_end": "1",
        "health_check": "",
        "health_check_timeout_s": "30",
        "unreachable_share": "90",
        "metric_name": ["ws_latency_ms", ""],
        "metric_target": ["50", ""],
        "metric_lower": ["0"],
        "marker_args": "-m\n{marker}",
        "keyword_args": "",
        **extra,
    }


def test_an_admin_creates_and_edits_an_environment_with_lists_and_rows(admin_user) -> None:
    client = client_for(admin_user)
    assert client.get(reverse("environment_new")).status_code == 200
    response = client.post(reverse("environment_create"), environment_post())
    assert response.status_code == 303, response.content.decode()[:2000]
    env = Environment.objects.get(name="qa")
    assert env.test_command == ["{python}", "-m", "pytest", "tests/e2e dir with spaces"]  # one line, one argument
    assert env.env_vars == {"TARGET": "ws://127.0.0.1:9000", "MODE": "a=b"}
    assert env.revisions == [
        {"revision": "r1", "commit": "aaa", "message": "first"},
        {"revision": "r2", "commit": "bbb", "message": "second"},
    ]
    assert env.metric_targets == {"ws_latency_ms": {"target": 50, "lower_is_better": True}}
    assert (env.keyword_args, env.writes_junit, env.deploy_timeout_s) == ([], False, 120)
    page = client.get(response["Location"]).content.decode()
    assert "Saved." in page and "tests/e2e dir with spaces</textarea>" in page
    assert client.post(reverse("environment_save", args=["qa"]), environment_post(timeout_s="900")).status_code == 303
    assert Environment.objects.get(name="qa").timeout_s == 900


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"deploy_command": "deploy\n{revison}"}, "deploy_command", "deploy_command[1]: unknown placeholder {revison}"),
        ({"marker_args": "-m"}, "marker_args", "must hold {marker} in exactly one argument"),
        ({"env_vars": "NOEQUALS"}, "env_vars", "line 1 (&#x27;NOEQUALS&#x27;) is not NAME=value"),
        ({"timeout_s": "ten"}, "timeout_s", "must be a whole number from 0 to 2147483647, got &#x27;ten&#x27;"),
        (
            {"revision": ["r1", "r1"], "revision_commit": ["", ""], "revision_message": ["", ""]},
            "revisions",
            "revisions[1].revision: &#x27;r1&#x27; is listed twice",
        ),
        (
            {"revision": ["", ""], "revision_commit": ["abc", ""], "revision_message": ["", ""]},
            "revisions",
            "revisions[0].revision: is required",
        ),
        ({"name": "bad name"}, "name", "must be a slug"),
    ],
)
def test_a_bad_environment_form_names_the_field_and_saves_nothing(admin_user, extra, field, message) -> None:
    response = client_for(admin_user).post(reverse("environment_create"), environment_post(**extra))
    assert response.status_code == 422
    page = response.content.decode()
    assert "Nothing was saved" in page and message in page
    assert f'class="field-error" data-key="{field}"' in page
    assert not Environment.objects.exists()


def test_the_set_up_pages_take_a_fixed_number_of_queries(admin_user, django_assert_max_num_queries) -> None:
    """However many environments and sessions exist: one query for the list, none per row."""
    for index in range(12):
        Environment.objects.create(name=f"env-{index}", test_command=["pytest"])
    client = client_for(admin_user)
    for url in (reverse("session_new"), reverse("environment_list"), reverse("environment_edit", args=["env-3"])):
        client.get(url)  # warm the session and the user
        with django_assert_max_num_queries(6):
            assert client.get(url).status_code == 200
    LoopSession.objects.create(title="Empty", slug="empty", environment=Environment.objects.get(name="env-1"))
    client.get(reverse("session_detail", args=["empty"]))
    with django_assert_max_num_queries(20):  # a viewer's session page is bound at 15; an admin's adds Operate
        assert "Get results in" in client.get(reverse("session_detail", args=["empty"])).content.decode()
