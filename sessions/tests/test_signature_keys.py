"""Signature keys from where the failure happened, and the migration that re-keyed stored signatures."""

from __future__ import annotations

import io
import random
from xml.sax.saxutils import escape, quoteattr

import pytest
from django.apps import apps
from django.db.models import Q

from sessions.demo import loader
from sessions.ingest.fingerprint import fingerprint, signature_key
from sessions.ingest.frames import project_frames
from sessions.ingest.similarity import group_similar, similar
from sessions.models import FailureSignature, Fix, SignatureEvent, TestResult
from sessions.services import triage
from sessions.services.ingestion import signature_lookup
from sessions.services.ingestion.upload import ingest_file
from sessions.services.rekey import rekey_signatures

MISMATCH = "AssertionError: assert 'unknown_message_type' == 'invalid_message'"


def long_tb(test: str, module: str = "tests/e2e/test_chat.py", line: int = 40) -> str:
    """pytest's default (long) traceback of an assert in the test body."""
    return (
        f"    def {test}(ws):\n        reply = ws.send({{'type': 'bogus'}})\n"
        f">       assert reply['error'] == 'invalid_message'\n"
        f"E       {MISMATCH}\n\n{module}:{line}: AssertionError"
    )


def helper_tb(test: str, n: int) -> str:
    """A shared helper that fails under many tests: the test frame, then the helper's."""
    sep = "_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _"
    return (
        f"    def {test}(client):\n>       login(client, 'user{n}')\n\ntests/e2e/test_area_{n % 7}.py:{10 + n}: \n"
        f"{sep}\n\n    def login(client, name):\n        r = client.post('/login', name)\n"
        f">       assert r.status == 200, f'login of {{name}} failed'\n"
        f"E       AssertionError: login of 'user{n}' failed\nE       assert {500 + n % 3} == 200\n\n"
        f"tests/support/auth.py:{20 + n % 4}: AssertionError"
    )


def junit(cases: list[tuple[str, str, str]], suite: str = "e2e") -> bytes:
    """(name, message, traceback) failures in a pytest-style JUnit file."""
    body = "".join(
        f'<testcase classname="tests.e2e.test_chat" name={quoteattr(name)} time="0.5">'
        f"<failure message={quoteattr(message)}>{escape(tb)}</failure></testcase>"
        for name, message, tb in cases
    )
    return f'<?xml version="1.0"?><testsuites><testsuite name="{suite}">{body}</testsuite></testsuites>'.encode()


def upload(data: bytes, name: str, cycle: int | None = None):
    return ingest_file(
        io.BytesIO(data), name, session_slug="keys", cycle_number=cycle, environment_name="staging",
        create_environment=True,
    ).run  # fmt: skip


# -- the site, read from each traceback shape ---------------------------------------------------------


def test_the_site_of_an_assert_in_the_test_body_is_the_test() -> None:
    assert project_frames(long_tb("test_send")) == ("e2e/test_chat.py:test_send",)


def test_a_helper_is_the_site_and_the_test_above_it_is_not() -> None:
    assert project_frames(helper_tb("test_a", 1)) == ("support/auth.py:login",)
    assert project_frames(helper_tb("test_b", 2)) == project_frames(helper_tb("test_a", 1))


def test_short_style_and_library_frames() -> None:
    text = (
        "tests/test_api.py:12: in test_fetch\n    fetch_user(1)\nsrc/app/client.py:30: in fetch_user\n    get(url)\n"
        "src/app/http.py:8: in get\n    return requests.get(url)\n"
        ".venv/lib/python3.12/site-packages/requests/api.py:73: in get\n    return request('get', url)\n"
        "/usr/lib/python3.12/socket.py:99: in create_connection\n    raise err\n"
        "E   ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert project_frames(text) == ("app/http.py:get", "app/client.py:fetch_user")


def test_native_tracebacks_keep_no_checkout_folder_or_line() -> None:
    def native(root: str, line: int) -> str:
        return (
            f'Traceback (most recent call last):\n  File "{root}/tests/test_x.py", line {line}, in test_x\n'
            f'    check()\n  File "{root}/tests/util.py", line {line + 9}, in check\n    raise ValueError(1)\n'
            "ValueError: 1"
        )

    first, second = native("/srv/checkouts/run-12", 5), native("/srv/checkouts/run-13", 7)
    assert project_frames(first) == project_frames(second) == ("tests/util.py:check",)


def test_the_last_exception_of_a_chain_and_not_the_captured_output() -> None:
    text = (
        "tests/test_db.py:3: in test_db\n    first()\nE   KeyError: 'x'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "tests/test_db.py:9: in test_db\n    second()\ntests/store.py:4: in second\n    raise RuntimeError\n"
        "E   RuntimeError\n\n--- Captured stdout call ---\nsrc/noise.py:1: in logged_frame\n"
    )
    assert project_frames(text) == ("tests/store.py:second",)


def test_javascript_stacks_and_line_style() -> None:
    js = (
        "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal\n"
        "    at checkReply (/home/ci/app/test/support/reply.js:4:11)\n"
        "    at TestContext.<anonymous> (/home/ci/app/test/chat.test.js:12:5)\n"
        "    at Test.runInAsyncScope (node:async_hooks:206:9)\n"
    )
    assert project_frames(js) == ("support/reply.js:checkReply",)
    assert project_frames("/ci/tests/test_x.py:33: AssertionError: assert 1 == 2") == ("tests/test_x.py",)
    assert project_frames("") == () and project_frames("no frames here") == ()


def test_the_key_adds_the_site_and_keeps_the_old_key_without_one() -> None:
    digest, text = signature_key("AssertionError", MISMATCH, long_tb("test_send"))
    assert text == "AssertionError: assert '<q>' == '<q>' @ e2e/test_chat.py:test_send"
    assert digest != fingerprint("AssertionError", MISMATCH)[0]
    assert signature_key("TimeoutError", "Timeout after 120s", "") == fingerprint("TimeoutError", "Timeout after 3s")


# -- through ingestion ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_assertion_text_at_two_sites_is_two_signatures() -> None:
    upload(
        junit([("test_send", MISMATCH, long_tb("test_send")), ("test_route", MISMATCH, long_tb("test_route"))]), "a.xml"
    )
    signatures = FailureSignature.objects.order_by("normalized")
    assert [s.normalized.rsplit(":", 1)[-1] for s in signatures] == ["test_route", "test_send"]
    assert {s.result_count for s in signatures} == {1}


@pytest.mark.django_db
def test_one_helper_failing_under_fifty_tests_is_one_signature() -> None:
    cases = [
        (f"test_flow_{n}", f"AssertionError: login of 'user{n}' failed", helper_tb(f"test_flow_{n}", n))
        for n in range(50)
    ]
    upload(junit(cases), "helper.xml")
    signature = FailureSignature.objects.get()
    assert signature.result_count == 50 and signature.test_count == 50
    assert signature.normalized.endswith("@ support/auth.py:login")


# -- the re-keying migration on real rows -----------------------------------------------------------------


def _legacy_upload(monkeypatch: pytest.MonkeyPatch, data: bytes, name: str, cycle: int):
    """Store results as the old rule did (type and message only): the rows migration 0011 found."""
    with monkeypatch.context() as patched:
        patched.setattr(signature_lookup, "site_of", lambda error_type, details: ())
        return upload(data, name, cycle)


def _roots_hold_their_keys() -> None:
    """Every result sits on the signature (or the merge target of the one) that holds its new key."""
    for result in TestResult.objects.filter(signature__isnull=False):
        family = FailureSignature.objects.filter(Q(pk=result.signature_id) | Q(merged_into_id=result.signature_id))
        held = {s.fingerprint for s in family}
        keys = {signature_key(s.error_type, result.message, result.details)[0] for s in family}
        assert keys & held, result.message


@pytest.mark.django_db
def test_rekeying_splits_lumped_causes_and_keeps_the_triage(monkeypatch, engineer) -> None:
    lumped = [("test_send", MISMATCH, long_tb("test_send"))] * 1 + [
        (f"test_send_{n}", MISMATCH, long_tb("test_send")) for n in range(3)
    ]
    other_site = [("test_route", MISMATCH, long_tb("test_route", "tests/e2e/test_routing.py"))]
    helper = [
        (f"test_flow_{n}", f"AssertionError: login of 'user{n}' failed", helper_tb(f"test_flow_{n}", n))
        for n in range(5)
    ]
    _legacy_upload(monkeypatch, junit(lumped + other_site + helper), "old.xml", 1)
    old = FailureSignature.objects.get(error_type="AssertionError", normalized__contains="'<q>' == '<q>'")
    helper_sig = FailureSignature.objects.get(normalized__contains="login of")
    assert old.result_count == 5
    triage.set_title(old, "Routing replies with the wrong error", old.version, engineer)
    analysis = triage.create_analysis(FailureSignature.objects.get(pk=old.pk), engineer, "routing")
    Fix.objects.create(analysis=analysis, sha="abc1234", author=engineer)
    status = FailureSignature.objects.get(pk=old.pk).status

    report = rekey_signatures(apps)

    kept = FailureSignature.objects.get(pk=old.pk)
    assert kept.title == "Routing replies with the wrong error" and kept.status == status
    assert list(kept.analyses.all()) == [analysis] and analysis.fixes.count() == 1
    assert kept.normalized.endswith("@ e2e/test_chat.py:test_send") and kept.result_count == 4
    split = FailureSignature.objects.get(normalized__endswith="test_routing.py:test_route")
    assert split.result_count == 1 and split.status == "new" and split.merged_into_id is None
    assert SignatureEvent.objects.filter(signature=split, action="split", detail__contains=f"#{old.pk}").exists()
    assert FailureSignature.objects.get(pk=helper_sig.pk).result_count == 5  # one helper: still one signature
    assert report.split == 1 and report.rekeyed == 2 and report.moved == 1
    _roots_hold_their_keys()
    again = rekey_signatures(apps)
    assert (again.split, again.rekeyed, again.moved, again.combined) == (0, 0, 0, 0)


@pytest.mark.django_db
def test_rekeying_keeps_hand_merges_and_combines_one_cause(monkeypatch, engineer) -> None:
    # Two old keys (different messages) at one site; a hand merge of two others.
    tb = long_tb("test_send")
    _legacy_upload(monkeypatch, junit([("test_send", "AssertionError: reply was late", tb)]), "one.xml", 1)
    _legacy_upload(monkeypatch, junit([("test_send", "AssertionError: reply was late by 5s", tb)]), "two.xml", 2)
    late, late_by = FailureSignature.objects.order_by("pk")
    assert late.fingerprint != late_by.fingerprint
    _legacy_upload(monkeypatch, junit([("test_a", "KeyError: 'user'", long_tb("test_a"))]), "three.xml", 3)
    _legacy_upload(monkeypatch, junit([("test_b", "IndexError: list index", long_tb("test_b"))]), "four.xml", 4)
    key_error = FailureSignature.objects.get(title__contains="KeyError")
    index_error = FailureSignature.objects.get(title__contains="IndexError")
    triage.merge(index_error, key_error, engineer)

    rekey_signatures(apps)

    # The messages differ after masking, so these stay two signatures: only the site was added.
    assert FailureSignature.objects.get(pk=late.pk).merged_into_id is None
    assert FailureSignature.objects.get(pk=index_error.pk).merged_into_id == key_error.pk
    assert FailureSignature.objects.get(pk=key_error.pk).result_count == 2
    _roots_hold_their_keys()
    # A new failure of the merged cause still lands on the merge target.
    upload(junit([("test_b", "IndexError: list index", long_tb("test_b"))], suite="later"), "five.xml", 5)
    assert FailureSignature.objects.get(pk=key_error.pk).result_count == 3


@pytest.mark.django_db
def test_rekeying_combines_a_stale_key_with_its_cause_and_keeps_the_analysis(monkeypatch, engineer) -> None:
    """Rows keyed under an older mask rule: their stored key no longer reproduces, their new one does."""
    failure = junit([("test_send", MISMATCH, long_tb("test_send"))])
    _legacy_upload(monkeypatch, failure, "one.xml", 1)
    stale = FailureSignature.objects.get()
    FailureSignature.objects.filter(pk=stale.pk).update(fingerprint="0" * 40)
    analysis = triage.create_analysis(FailureSignature.objects.get(pk=stale.pk), engineer, "why")
    _legacy_upload(monkeypatch, junit([("test_send", MISMATCH, long_tb("test_send"))], suite="again"), "two.xml", 2)
    fresh = FailureSignature.objects.exclude(pk=stale.pk).get()

    report = rekey_signatures(apps)

    assert report.combined == 1
    winner = FailureSignature.objects.get(pk=stale.pk)  # it holds the analysis
    assert winner.normalized.endswith("test_chat.py:test_send") and winner.result_count == 2
    assert list(winner.analyses.all()) == [analysis]
    assert FailureSignature.objects.get(pk=fresh.pk).merged_into_id == stale.pk
    _roots_hold_their_keys()


@pytest.mark.django_db
def test_the_demo_keeps_its_analyses_titles_fixes_and_merges_after_rekeying(monkeypatch) -> None:
    """The demo loaded as the old rule stored it (real pytest results), then migration 0011's function."""
    with monkeypatch.context() as patched:
        patched.setattr(signature_lookup, "site_of", lambda error_type, details: ())
        loader.load(lambda line: None)
    before = {
        s.pk: (s.title, s.status, s.merged_into_id, sorted(s.analyses.values_list("pk", flat=True)))
        for s in FailureSignature.objects.all()
    }
    fixes = dict(Fix.objects.values_list("pk", "analysis__signature_id"))
    assert any(analyses for *_rest, analyses in before.values()) and fixes

    report = rekey_signatures(apps)

    after = {
        s.pk: (s.title, s.status, s.merged_into_id, sorted(s.analyses.values_list("pk", flat=True)))
        for s in FailureSignature.objects.filter(pk__in=before)
    }
    assert after == before  # nothing people wrote moved; the demo's causes were already one site each
    assert dict(Fix.objects.values_list("pk", "analysis__signature_id")) == fixes
    assert report.combined == 0
    _roots_hold_their_keys()


def test_similar_keys_are_one_word_apart_with_the_same_type_and_site() -> None:
    site = " @ support/api.py:get_json"
    health, tools = (
        f"AssertionError: GET /api/v<n>/health -> HTTP <n>{site}",
        f"AssertionError: GET /api/v<n>/tools -> HTTP <n>{site}",
    )
    assert similar(health, tools)
    assert not similar(health, tools.replace("get_json", "post_json"))  # another site
    assert not similar(health, "TimeoutError: GET /api/v<n>/tools -> HTTP <n>" + site)  # another type
    assert not similar("E: a b c", "E: a x y") and not similar("E: a b", "E: a b c")
    assert group_similar([health, tools, "E: other"]) == {health: health, tools: health, "E: other": "E: other"}


@pytest.mark.django_db
def test_the_merge_form_offers_similar_signatures_first(client, engineer) -> None:
    helper = "tests/support/api.py:9: in get_json\n    assert r.status == 200\nE   AssertionError\n"
    cases = [(f"test_{r}", f"AssertionError: GET /api/v1/{r} -> HTTP 404", helper) for r in ("health", "tools")]
    cases.append(("test_other", "AssertionError: something else entirely", long_tb("test_other")))
    upload(junit(cases), "similar.xml")
    health = FailureSignature.objects.get(normalized__contains="health")
    client.force_login(engineer)
    html = client.get(f"/signatures/{health.pk}/").content.decode()
    assert '<code id="signature-site">support/api.py:get_json</code>' in html  # the key's site, shown
    options = html[html.index('id="merge-target"') :]
    tools = FailureSignature.objects.get(normalized__contains="tools")
    assert options.index(f'value="{tools.pk}" data-similar="1"') < options.index("something else entirely")


def test_skipping_masks_that_cannot_match_changes_no_key(monkeypatch) -> None:
    """``fingerprint`` runs a mask only when its literal part is in the line: the same keys as running all."""
    from sessions.ingest import fingerprint as module

    rnd = random.Random(7)
    alphabet = "ab0x9:/-.[]'\" \\Temptmpvar"
    messages = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(60))) for _ in range(3000)]
    messages += [
        r"at C:\Users\x\AppData\Local\Temp\pytest-1\f.txt on 2024-01-02T10:00:00Z [::1]:80 0xdead 10.0.0.1:80",
        "request 6f1c2d3e-aaaa-bbbb-cccc-0123456789ab from /var/folders/x/y at 12:30:01 id AbCdEf0123456789XyZ",
    ]
    fast = [module.fingerprint("E", m) for m in messages]
    monkeypatch.setattr(module, "_NEEDS", tuple(() for _ in module._NEEDS))
    assert [module.fingerprint("E", m) for m in messages] == fast


def test_project_folders_named_like_tools_stay_the_projects() -> None:
    text = "tests/unittests/test_db.py:9: in test_query\n    query()\nsrc/internal/db.py:4: in query\n    run()\n"
    assert project_frames(text) == ("internal/db.py:query",)
    framework = "/venv/lib/python3.12/site-packages/_pytest/python.py:159: in pytest_pyfunc_call\n    x()\n"
    assert project_frames(framework + "tests/unittests/test_db.py:9: AssertionError") == ("unittests/test_db.py",)


def test_an_error_seen_only_at_the_tests_line_is_one_signature_under_every_test() -> None:
    """The demo's client raises with its frames hidden: pytest shows only the test's line."""

    def shown(test: str) -> str:
        return (
            f"    run = conn.run_agent(agent, PROMPTS[prompt])\n"
            f"E   staging_client.ServerErrorEvent: server error event unknown_message_type: 'execute_agent'\n\n"
            f"tests/test_1_websocket_events_staging.py:27: in {test}"
        )

    error = "staging_client.ServerErrorEvent"
    first = signature_key(error, "server error event unknown_message_type", shown("test_events_in_order"))
    second = signature_key(error, "server error event unknown_message_type", shown("test_payloads"))
    assert first == second == fingerprint(error, "server error event unknown_message_type")
    # An assertion at the same place is the test's own: its site is the test.
    assert signature_key("AssertionError", "assert 1 == 2", shown("test_payloads"))[1].endswith(":test_payloads")
