"""Owners and discussion (assign, comment, my signatures) and "new since" on the run and session pages."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from sessions.models import FailureSignature, SignatureComment, SignatureEvent
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
WS = "ConnectionClosedError: received 1011 (internal error)"
TIMEOUT = "TimeoutError: Timeout after 120s waiting for agent_completed"


@pytest.fixture
def two_cycles():
    first = ingest([Case("test_ws_a", "failed", 1.0, WS), Case("test_ok")], cycle=1, label="one")
    second = ingest(
        [Case("test_ws_a", "failed", 1.0, WS), Case("test_ws_b", "failed", 1.0, WS),
         Case("test_stream", "failed", 2.0, TIMEOUT), Case("test_ok")],
        cycle=2, label="two",
    )  # fmt: skip
    ws = FailureSignature.objects.get(error_type="ConnectionClosedError")
    timeout = FailureSignature.objects.get(error_type="TimeoutError")
    return first, second, ws, timeout


# -- owners ------------------------------------------------------------------------------------------------


def test_assign_to_me_answers_the_card_and_the_activity(client, engineer, two_cycles) -> None:
    _first, _second, ws, _timeout = two_cycles
    client.force_login(engineer)
    response = client.post(reverse("signature_assign", args=[ws.pk]), {"assignee": "me"}, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card" id="discussion">')
    assert re.search(r'id="signature-owner">Owner:\s*<strong>erin</strong>', html)
    assert 'id="activity" hx-swap-oob="true"' in html and "assigned: to erin" in html
    assert 'id="assign-me"' not in html  # already mine
    ws.refresh_from_db()
    assert ws.assignee == engineer
    assert SignatureEvent.objects.filter(signature=ws, action="assigned", user=engineer).count() == 1


def test_only_engineers_and_up_may_own_a_signature(client, engineer, operator, viewer, two_cycles) -> None:
    _first, _second, ws, _timeout = two_cycles
    client.force_login(engineer)
    url = reverse("signature_assign", args=[ws.pk])
    refused = client.post(url, {"assignee": str(viewer.pk)}, headers=HX)
    assert refused.status_code == 422 and "must be an active engineer, operator or admin" in refused.content.decode()
    assert client.post(url, {"assignee": "99999999999999999999"}, headers=HX).status_code == 422
    assert client.post(url, {"assignee": str(operator.pk)}, headers=HX).status_code == 200
    ws.refresh_from_db()
    assert ws.assignee == operator
    assert client.post(url, {"assignee": ""}).status_code == 302  # without HTMX: back to the page
    ws.refresh_from_db()
    assert ws.assignee is None
    client.force_login(viewer)
    assert client.post(url, {"assignee": "me"}).status_code == 403


def test_my_signatures_lists_mine_open_first(client, engineer, two_cycles) -> None:
    _first, _second, ws, timeout = two_cycles
    FailureSignature.objects.filter(pk__in=[ws.pk, timeout.pk]).update(assignee=engineer)
    FailureSignature.objects.filter(pk=ws.pk).update(status=FailureSignature.Status.VERIFIED)
    client.force_login(engineer)
    html = client.get(reverse("sessions_list")).content.decode()
    section = html[html.index('id="my-signatures"') :]
    assert section.index(timeout.title) < section.index(ws.title)  # the open one first
    FailureSignature.objects.update(assignee=None)
    assert 'id="my-signatures"' not in client.get(reverse("sessions_list")).content.decode()


# -- comments ----------------------------------------------------------------------------------------------


def test_a_comment_renders_markdown_and_never_raw_html(client, engineer, two_cycles) -> None:
    _first, _second, ws, _timeout = two_cycles
    client.force_login(engineer)
    body = (
        "Seen on **r7** too, see [the run](https://ci.example/runs/7) and `ws.send()`\n\n"
        "<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)>"
    )
    response = client.post(reverse("signature_comment", args=[ws.pk]), {"body": body}, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>r7</strong>" in html and "<code>ws.send()</code>" in html
    assert '<a href="https://ci.example/runs/7" rel="nofollow noopener noreferrer">the run</a>' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html and "<img" not in html
    assert "comment: Seen on **r7** too" in html  # the activity, out of band
    assert SignatureComment.objects.get(signature=ws).author == engineer
    page = client.get(reverse("signature_detail", args=[ws.pk])).content.decode()
    assert 'id="discussion"' in page and "<strong>r7</strong>" in page


def test_a_blank_or_oversized_comment_is_refused_and_nothing_stored(client, engineer, viewer, two_cycles) -> None:
    _first, _second, ws, _timeout = two_cycles
    client.force_login(engineer)
    url = reverse("signature_comment", args=[ws.pk])
    blank = client.post(url, {"body": "   "}, headers=HX)
    assert blank.status_code == 422 and "a comment needs some text" in blank.content.decode()
    assert client.post(url, {"body": "x" * 10_001}, headers=HX).status_code == 422
    assert client.post(url, {"body": "bad\x00byte"}, headers=HX).status_code in (400, 422)
    client.force_login(viewer)
    assert client.post(url, {"body": "hello"}).status_code == 403
    assert not SignatureComment.objects.exists()
    page = client.get(reverse("signature_detail", args=[ws.pk])).content.decode()
    assert 'id="comment-form"' not in page and "No comment yet." in page


# -- new since ---------------------------------------------------------------------------------------------


def test_the_run_page_leads_with_new_and_regressed_signatures(client, viewer, two_cycles) -> None:
    _first, second, ws, timeout = two_cycles
    client.force_login(viewer)
    html = client.get(reverse("run_detail", args=[second.pk])).content.decode()
    table = html[html.index('id="signatures"') :]
    assert table.index(timeout.title) < table.index(ws.title)  # new first, though it has fewer results
    row_timeout = table[table.index(timeout.title) : table.index(ws.title)]
    assert 'class="badge novelty-new"' in row_timeout
    row_ws = table[table.index(ws.title) : table.index("</tbody>")]
    assert 'class="badge novelty-new"' not in row_ws and "badge regressed" not in row_ws
    FailureSignature.objects.filter(pk=ws.pk).update(status=FailureSignature.Status.REGRESSED)
    html = client.get(reverse("run_detail", args=[second.pk])).content.decode()
    table = html[html.index('id="signatures"') :]
    assert 'title="verified once, seen again">regressed</span>' in table


def test_the_first_cycle_has_everything_new_and_an_excluded_run_does_not_count(client, viewer, two_cycles) -> None:
    first, second, ws, timeout = two_cycles
    client.force_login(viewer)
    html = client.get(reverse("run_detail", args=[first.pk])).content.decode()
    assert html.count('class="badge novelty-new"') == 1  # cycle 1: its one signature is new
    type(first).objects.filter(pk=first.pk).update(counted=False)  # cycle 1 said nothing after all
    html = client.get(reverse("run_detail", args=[second.pk])).content.decode()
    table = html[html.index('id="signatures"') : html.index("</tbody>")]
    assert table.count('class="badge novelty-new"') == 2


def test_the_session_page_leads_with_the_cycles_new_signatures(client, viewer, two_cycles) -> None:
    _first, second, ws, timeout = two_cycles
    client.force_login(viewer)
    html = client.get(reverse("session_detail", args=[second.session.slug])).content.decode()
    lead = html[html.index('id="board-lead"') : html.index('class="board"')]
    assert timeout.title in lead and ws.title not in lead
    FailureSignature.objects.filter(pk=ws.pk).update(status=FailureSignature.Status.REGRESSED)
    html = client.get(reverse("session_detail", args=[second.session.slug])).content.decode()
    lead = html[html.index('id="board-lead"') : html.index('class="board"')]
    assert lead.index(ws.title) >= 0 and "badge regressed" in lead
