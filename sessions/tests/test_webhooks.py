"""Webhooks: every event reaches a real receiver on 127.0.0.1 through a real Celery worker, signed; a failing
receiver gets retries with backoff, then a failed delivery is recorded; the Slack format is a message Slack
accepts; the CLI and the admin manage them; which webhooks get which event.

The receiver is a small ``http.server`` in a thread of the test process; the worker is a real ``celery
worker`` subprocess (``sessions.tests.worker``) with a short backoff so that retries happen within seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from sessions.models import Deployment, Environment, FailureSignature, LoopSession, Webhook, WebhookDelivery
from sessions.services import triage, webhooks
from sessions.tests.test_pages import Case, deploy, ingest
from sessions.tests.worker import running_worker
from sessions.work import queueing

SECRET = "s3cret-for-tests"
BASE_URL = "http://loopdash.example"
MAX_ATTEMPTS = 3


# -- the receiver ------------------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; ``/fail`` answers 500, anything else 204."""

    url: str
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.path == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            found = holder["receiver"]
            with found.lock:
                found.got.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(500 if self.path == "/fail" else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["receiver"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def webhook_worker(django_db_setup, tmp_path_factory):
    env = {
        "LOOPDASH_WEBHOOK_BACKOFF_S": "1",
        "LOOPDASH_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "LOOPDASH_WEBHOOK_TIMEOUT_S": "5",
        "LOOPDASH_BASE_URL": BASE_URL,
    }
    with running_worker(tmp_path_factory.mktemp("webhook-worker"), concurrency=2, env=env) as worker:
        yield worker


def wait_for(check: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def signed(received: Received, secret: str = SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers.get("x-loopdash-signature", ""), expected)


def events_at(receiver: Receiver, path: str) -> list[str]:
    return [r.json["event"] for r in receiver.on(path)]


# -- with a worker and a receiver -------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_every_event_reaches_the_receiver_signed(receiver, webhook_worker, settings, tmp_path) -> None:
    settings.LOOPDASH_BASE_URL = BASE_URL  # the test process builds the bodies of the events it completes
    webhooks.add_webhook(f"{receiver.url}/all", SECRET)
    webhooks.add_webhook(f"{receiver.url}/slack", SECRET, events="run.finished", format="slack")

    first = ingest(
        [
            Case("test_x", "failed", 1.0, "KeyError: 'alpha'"),
            Case("test_y", "failed", 1.0, "ValueError: beta went wrong"),
            Case("test_z"),
        ],
        session="hooked",
        cycle=1,
        label="w1",
    )
    wait_for(lambda: events_at(receiver, "/all").count("signature.new") == 2, "two signature.new")
    wait_for(lambda: "run.finished" in events_at(receiver, "/all"), "run.finished")

    author = get_user_model().objects.create(username="hook-writer")
    for signature in FailureSignature.objects.filter(run_counts__run=first):
        analysis = triage.create_analysis(signature, author, signature.title)
        analysis.refresh_from_db()
        triage.add_fix(analysis, {"version": analysis.version, "sha": "abcdef1234567", "message": "fix"}, author)
    deploy(first, "r2", "abcdef1234567")  # both fixes go out
    ingest(
        [Case("test_x"), Case("test_y", "failed", 1.0, "ValueError: beta went wrong"), Case("test_z")],
        session="hooked",
        cycle=2,
        label="w2",
    )
    wait_for(lambda: {"fix.verified", "fix.did_not_fix"} <= set(events_at(receiver, "/all")), "fix verdicts")
    ingest(  # the verified signature comes back
        [Case("test_x", "failed", 1.0, "KeyError: 'alpha'"), Case("test_y"), Case("test_z")],
        session="hooked",
        cycle=3,
        label="w3",
    )
    wait_for(lambda: "signature.regressed" in events_at(receiver, "/all"), "signature.regressed")

    session = LoopSession.objects.get(slug="hooked")
    Environment.objects.filter(pk=session.environment_id).update(
        deploy_command=["{python}", "-c", "print('deployed commit=abcdef1234567')"],
        working_dir=str(tmp_path),
        revisions=[{"revision": "r3", "commit": "abcdef1234567", "message": ""}],
        default_revision="r3",
    )
    session.refresh_from_db()
    deployment = queueing.request_deploy(session, revision="r3")
    wait_for(lambda: "deployment.finished" in events_at(receiver, "/all"), "deployment.finished", timeout=90)

    received = receiver.on("/all")
    assert set(events_at(receiver, "/all")) == set(webhooks.WEBHOOK_EVENTS)
    for item in received:
        assert signed(item), item.json["event"]
        assert item.headers["content-type"] == "application/json"
        assert item.headers["x-loopdash-event"] == item.json["event"]
        assert set(item.json) == {"event", "at", "data"}
        assert item.json["data"]["url"].startswith(BASE_URL + "/")
    finished = next(r.json for r in received if r.json["event"] == "deployment.finished")
    assert finished["data"]["deployment"] == deployment.pk and finished["data"]["status"] == "succeeded"
    assert finished["data"]["url"] == BASE_URL + reverse("deployment_detail", args=[deployment.pk])
    run_event = next(r.json for r in received if r.json["event"] == "run.finished")
    assert run_event["data"]["run"] == first.pk and run_event["data"]["totals"]["failed"] == 2
    assert Deployment.objects.get(pk=deployment.pk).status == "succeeded"

    # Slack got only its one event, three times (three runs), each a message Slack accepts
    slack = receiver.on("/slack")
    assert len(slack) == 3
    for item in slack:
        assert signed(item)
        assert_slack_accepts(item.json)
    assert f"<{BASE_URL}/runs/{first.pk}/|Run {first.pk}>" in slack[0].json["text"]

    delivered = WebhookDelivery.objects.filter(webhook__url=f"{receiver.url}/all")
    assert {d.status for d in delivered} == {"delivered"} and {d.attempts for d in delivered} == {1}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_gets_retries_then_a_failed_delivery(receiver, webhook_worker) -> None:
    hook = webhooks.add_webhook(f"{receiver.url}/fail", SECRET, events=["run.finished"])
    run = ingest([Case("test_ok")], session="hooked-fail", cycle=1, label="f1")

    def failed() -> WebhookDelivery | None:
        return WebhookDelivery.objects.filter(webhook=hook, status="failed").first()

    delivery = wait_for(failed, "the delivery to fail after its attempts")
    attempts = receiver.on("/fail")
    assert len(attempts) == MAX_ATTEMPTS  # every attempt reached the receiver, the same body each time
    assert {a.body for a in attempts} == {delivery.payload.encode()}
    assert all(signed(a) for a in attempts)
    assert delivery.attempts == MAX_ATTEMPTS and delivery.response_code == 500
    assert delivery.last_error == "HTTP 500" and delivery.delivered_at is None
    assert json.loads(delivery.payload)["data"]["run"] == run.pk


# -- without a worker ----------------------------------------------------------------------------------------------


def assert_slack_accepts(message: dict) -> None:
    """What Slack's incoming webhooks take: a non-empty ``text`` (the notification fallback) and, when given,
    ``blocks`` of known block types whose mrkdwn text is at most 3,000 characters; ``&``, ``<`` and ``>``
    appear only escaped or as link brackets ``<url|label>``."""
    assert set(message) <= {"text", "blocks"}
    assert isinstance(message["text"], str) and message["text"].strip()
    for block in message.get("blocks", []):
        assert block["type"] == "section"
        assert block["text"]["type"] == "mrkdwn" and 0 < len(block["text"]["text"]) <= 3000
    outside_links = re.sub(r"<https?://[^|>\s]+\|[^<>]*>", "", message["text"])
    assert "<" not in outside_links and ">" not in outside_links
    assert not re.search(r"&(?!amp;|lt;|gt;)", outside_links)


@pytest.mark.django_db
def test_slack_messages_escape_what_slack_asks_and_link_the_page(settings) -> None:
    settings.LOOPDASH_BASE_URL = BASE_URL
    hook = Webhook(url="https://hooks.slack.com/services/T/B/X", secret="s", format="slack")
    data = {
        "signature": 7,
        "title": "AssertionError: <b>&</b> | 'x' > 1",
        "environment": "staging",
        "url": f"{BASE_URL}/signatures/7/",
    }
    message = json.loads(webhooks.body_for(hook, "signature.new", "2026-01-01T00:00:00+00:00", data))
    assert_slack_accepts(message)
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in message["text"]
    assert f"<{BASE_URL}/signatures/7/|" in message["text"]


@pytest.mark.django_db
def test_each_webhook_gets_only_its_events_and_sessions() -> None:
    run = ingest([Case("test_a", "failed", 1.0, "KeyError: 'k'")], session="followed", cycle=1, label="s1")
    other = ingest([Case("test_b")], session="not-followed", cycle=1, label="s2")
    every = webhooks.add_webhook("http://127.0.0.1:9/every", "x")
    runs_only = webhooks.add_webhook("http://127.0.0.1:9/runs", "x", events="run.finished")
    followed = webhooks.add_webhook("http://127.0.0.1:9/one", "x", sessions=[LoopSession.objects.get(slug="followed")])
    Webhook.objects.create(url="http://127.0.0.1:9/off", secret="x", active=False)
    for completed in (run, other):
        webhooks.run_finished(completed)
    got = {
        hook.url.rsplit("/", 1)[1]: sorted(hook.deliveries.values_list("event", flat=True))
        for hook in (every, runs_only, followed)
    }
    assert got == {
        "every": ["run.finished", "run.finished", "signature.new"],
        "runs": ["run.finished", "run.finished"],
        "one": ["run.finished", "signature.new"],
    }
    assert not WebhookDelivery.objects.filter(webhook__active=False).exists()


@pytest.mark.django_db
def test_the_command_adds_lists_and_removes_webhooks() -> None:
    LoopSession.objects.create(environment=Environment.objects.create(name="cli-env"), title="CLI", slug="cli-session")
    out = StringIO()
    call_command(
        "webhook",
        "add",
        "https://example.test/hook",
        "--secret",
        "abc",
        "--events",
        "run.finished,fix.verified",
        "--format",
        "slack",
        "--session",
        "cli-session",
        stdout=out,
    )
    hook = Webhook.objects.get()
    assert hook.events == ["run.finished", "fix.verified"] and hook.format == "slack"
    assert [s.slug for s in hook.sessions.all()] == ["cli-session"]
    assert out.getvalue().startswith(f"webhook {hook.pk} https://example.test/hook format=slack")
    listed = StringIO()
    call_command("webhook", "list", stdout=listed)
    assert f"webhook {hook.pk} https://example.test/hook" in listed.getvalue()
    assert "no deliveries yet" in listed.getvalue()

    for bad, field_name in [
        (["file:///etc/passwd"], "url:"),
        (["ftp://example.test/x"], "url:"),
        (["javascript:alert(1)"], "url:"),
        (["https://example.test/x", "--events", "run.started"], "events:"),
        (["https://example.test/x", "--session", "nope"], "--session:"),
    ]:
        with pytest.raises(CommandError) as caught:
            call_command("webhook", "add", *bad, "--secret", "abc", stdout=StringIO())
        assert str(caught.value).startswith(field_name), str(caught.value)
    assert Webhook.objects.count() == 1

    removed = StringIO()
    call_command("webhook", "remove", str(hook.pk), stdout=removed)
    assert removed.getvalue().strip() == f"webhook {hook.pk} removed" and not Webhook.objects.exists()
    with pytest.raises(CommandError):
        call_command("webhook", "remove", str(hook.pk), stdout=StringIO())


@pytest.mark.django_db
def test_admins_see_deliveries_read_only_and_cannot_save_a_bad_url(client, admin_user) -> None:
    hook = webhooks.add_webhook("https://example.test/hook", "abc")
    delivery = WebhookDelivery.objects.create(webhook=hook, event="run.finished", payload='{"event":"run.finished"}')
    client.force_login(admin_user)
    assert client.get(reverse("admin:loop_sessions_webhookdelivery_changelist")).status_code == 200
    page = client.get(reverse("admin:loop_sessions_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.get(reverse("admin:loop_sessions_webhookdelivery_add")).status_code == 403
    assert client.get(reverse("admin:loop_sessions_webhook_change", args=[hook.pk])).status_code == 200
    assert client.get(reverse("admin:loop_sessions_quarantine_changelist")).status_code == 200
    assert client.get(reverse("admin:loop_sessions_quarantine_add")).status_code == 403  # the pages add them
    response = client.post(
        reverse("admin:loop_sessions_webhook_add"),
        {"url": "ftp://example.test/hook", "secret": "x", "format": "json", "active": "on", **_inline_management()},
    )
    assert response.status_code == 200 and "only http:// or https://" in response.content.decode()
    assert Webhook.objects.count() == 1


def _inline_management() -> dict:
    prefix = "deliveries"
    return {
        f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "0",
    }
