"""The demo: the seeds' loop replayed on the example staging target.

Its results are files that real pytest wrote against real deploys of
`examples/staging` (see `examples/staging/make_results.py`), stored in
`sessions/demo_results/` and ingested here through the same path as any upload.
`sessions/demo_reruns/` holds real reruns, made the same way, of the tests that can
fail in cycles 3 to 6 (the streaming tests, which fail again until r5, and the two
flaky snapshot tests); a cycle's rerun keeps the ones its full run failed, so the
demo shows a rerun of failed tests, and a snapshot test that failed and then passed
on the same revision shows as flaky, whichever of them the results made fail.

The demo environment deploys and tests from a git repository made of `examples/staging`
(`repository.py`: a tagged commit per revision), so a deploy or a run started from the
pages goes through a worker's checkout, as a team's own suite does.

Deployments, five-whys analyses (through the triage services, so they have an
edit history) and fixes are added in the order an engineer would have added them,
so the fix lifecycle judges them for real: the first 1011 fix targets the wrong
race condition and shows as "did not fix"; the second one is verified.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import roles
from ..models import (
    Analysis,
    BusinessArea,
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    ImpactRule,
    LoopSession,
    Outcome,
    SignatureCategory,
    SuccessCriterion,
    TestResult,
    TestRun,
    WorkStatus,
)
from ..services import criteria, triage
from ..services.ingestion.cycles import resolve_cycle
from ..services.ingestion.upload import ingest_file
from ..services.lifecycle import on_deployment_succeeded
from ..services.signatures import apply_categories
from . import repository

# The data stays beside the package: scripts/pack_demo_results.py writes it, the Docker image copies it.
RESULTS_DIR = Path(__file__).resolve().parent.parent / "demo_results"
RERUNS_DIR = Path(__file__).resolve().parent.parent / "demo_reruns"
STAGING_DIR = settings.BASE_DIR / "examples" / "staging"
SLUG = "demo"

DEMO_USERS = [
    ("admin", "demo-admin", "admin"),
    ("olivia", "demo-operator", roles.OPERATOR),
    ("eli", "demo-engineer", roles.ENGINEER),
    ("vic", "demo-viewer", roles.VIEWER),
]

AREAS = {"chat": 120_000, "events": 42_000, "streaming": 80_000, "auth": 50_000, "api": 30_000}

CATEGORIES = [
    ("infrastructure", r"(?i)timeout|connection refused|1011|redis|unavailable", "#b45309"),
    ("auth", r"(?i)token|jwt|403|unauthori[sz]ed", "#7c3aed"),
    ("routing", r"(?i)unknown_message_type|404", "#0891b2"),
    ("product", r".", "#2563eb"),
]

# Which part of the product each test module protects (node-id globs), after the P1 rule.
AREA_RULES = [
    ("tests/test_1_websocket_events_staging.py::*", "events"),
    ("tests/test_2_message_flow_staging.py::*", "chat"),
    ("tests/test_3_agent_pipeline_staging.py::*", "chat"),
    ("tests/test_5_response_streaming_staging.py::*", "streaming"),
    ("tests/test_6_auth_websocket_staging.py::*", "auth"),
    ("tests/test_10_critical_path_staging.py::*", "api"),
]

P1_NAMED = [
    "tests/test_priority1_critical_REAL.py::test_001_websocket_connection_real",
    "tests/test_priority1_critical_REAL.py::test_002_websocket_authentication_real",
    "tests/test_priority1_critical_REAL.py::test_023_streaming_partial_results_real",
    "tests/test_priority1_critical_REAL.py::test_025_critical_event_delivery_real",
]


def ensure_users() -> None:
    """The four demo users, one per role, with the passwords ``demo_logins`` prints."""
    roles.ensure_groups()
    users = get_user_model()
    for username, password, role in DEMO_USERS:
        user, created = users.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        if role == "admin":
            user.is_staff = user.is_superuser = True
        user.save()
        if role in roles.ROLES:
            user.groups.set([Group.objects.get(name=role)])


DEMO_DEPLOY_COMMAND = ["{python}", "deploy.py", "--revision", "{revision}", "--commit", "{commit}"]


def staging_state_dir() -> Path:
    """The example target's state (pid, log, release) when the demo deploys it: outside every checkout."""
    return Path(settings.VAR_DIR).resolve() / "staging"


def ensure_environment() -> Environment:
    """The ``staging`` environment of examples/staging, its business areas, impact rules and categories."""
    revisions = json.loads((STAGING_DIR / "revisions.json").read_text())
    suite = repository.ensure()  # examples/staging as a git repository, a tag per revision
    env, _ = Environment.objects.get_or_create(name="staging")
    env.description = (
        "The example staging target in examples/staging: a WebSocket agent service and its e2e suite, "
        "deployed and tested from a git repository with a tag per revision."
    )
    env.repository = str(suite.path)
    env.working_dir = ""
    env.deploy_command = DEMO_DEPLOY_COMMAND
    env.test_command = ["{python}", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
    # The deploy runs in a checkout that is removed when it ends: the target's pid file, log and
    # installed release live in a state folder of their own, which `make run` shares.
    env.env_vars = {"STAGING_STATE_DIR": str(staging_state_dir())}
    env.revisions = [
        {"revision": r["revision"], "commit": suite.commits[r["revision"]], "message": r["message"]} for r in revisions
    ]
    env.default_revision = revisions[0]["revision"]
    env.health_check = ["{python}", "deploy.py", "--status"]
    env.timeout_s = 600
    env.metric_targets = {
        "ws_latency_ms": {"target": 50, "lower_is_better": True},
        "api_response_ms": {"target": 100, "lower_is_better": True},
        "agent_run_ms": {"target": 500, "lower_is_better": True},
    }
    env.save()
    for name, mrr in AREAS.items():
        BusinessArea.objects.update_or_create(name=name, defaults={"mrr": Decimal(mrr)})
    ImpactRule.objects.get_or_create(
        environment=env,
        match=ImpactRule.Match.GLOB,
        pattern="tests/test_priority1_critical_REAL.py::*",
        defaults={"priority": "P1", "area": BusinessArea.objects.get(name="chat"), "position": 0},
    )
    for position, (pattern, area) in enumerate(AREA_RULES, start=1):
        ImpactRule.objects.get_or_create(
            environment=env,
            match=ImpactRule.Match.GLOB,
            pattern=pattern,
            defaults={"area": BusinessArea.objects.get(name=area), "position": position},
        )
    for position, (name, pattern, colour) in enumerate(CATEGORIES):
        SignatureCategory.objects.update_or_create(
            name=name, defaults={"pattern": pattern, "colour": colour, "position": position}
        )
    apply_categories()  # signatures stored by an earlier load take the categories as they are now
    return env


def _signature(env: Environment, *needles: str) -> FailureSignature | None:
    for sig in FailureSignature.objects.filter(environment=env).order_by("-result_count"):
        text = f"{sig.error_type} {sig.normalized} {sig.sample_message}".lower()
        if all(n.lower() in text for n in needles):
            return sig
    return None


def _analysis(
    sig: FailureSignature, author, problem: str, whys: list[tuple[str, str]], root: str, behind: str, status: str
) -> Analysis:
    """Write an analysis the way an engineer does on the page, so that it has its edit history."""
    analysis = triage.create_analysis(sig, author, problem)
    for question, answer in whys:
        analysis.refresh_from_db()
        triage.add_step(analysis, {"version": analysis.version, "question": question, "answer": answer}, author)
    analysis.refresh_from_db()
    triage.update_analysis(
        analysis,
        {"version": analysis.version, "root_cause": root, "error_behind_error": behind, "status": status},
        author,
    )
    analysis.refresh_from_db()
    return analysis


def _fix(analysis: Analysis, author, sha: str, message: str) -> Fix:
    analysis.refresh_from_db()
    return triage.add_fix(analysis, {"version": analysis.version, "sha": sha, "message": message}, author)


def _refute(analysis: Analysis, author) -> None:
    analysis.refresh_from_db()
    triage.update_analysis(analysis, {"version": analysis.version, "status": Analysis.Status.REFUTED}, author)


def _title(sig: FailureSignature, title: str, author) -> None:
    sig.refresh_from_db()
    triage.set_title(sig, title, sig.version, author)
    sig.refresh_from_db()


def _all_signatures(env: Environment, *needles: str) -> list[FailureSignature]:
    found = []
    for sig in FailureSignature.objects.filter(environment=env, merged_into__isnull=True).order_by("pk"):
        text = f"{sig.error_type} {sig.normalized} {sig.sample_message}".lower()
        if all(n.lower() in text for n in needles):
            found.append(sig)
    return found


def _merge_all(into: FailureSignature, others: list[FailureSignature], author) -> FailureSignature:
    """Merge several fingerprints of one problem, as an engineer does from the signature page."""
    for other in others:
        if other.pk != into.pk:
            into = triage.merge(other, into, author)
    return into


def _failed_nodeids(run: TestRun) -> set[str]:
    return set(
        TestResult.objects.filter(run=run, outcome__in=(Outcome.FAILED, Outcome.ERROR)).values_list(
            "case__nodeid", flat=True
        )
    )


def _rerun_of(path: Path, failed: set[str]) -> bytes | None:
    """The rerun file's test cases that the full run failed (pytest's JUnit: classname + name)."""
    root = ElementTree.fromstring(gzip.decompress(path.read_bytes()))
    kept = 0
    for suite in root.iter("testsuite"):
        for case in list(suite.findall("testcase")):
            nodeid = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
            if nodeid in failed:
                kept += 1
            else:
                suite.remove(case)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True) if kept else None


def _commit(env: Environment, revision: str) -> str:
    return next(r["commit"] for r in env.revisions if r["revision"] == revision)


def load(stdout: Callable[[str], None] = print, *, reset: bool = False) -> LoopSession:
    """Load the demo; a second call finds it loaded and changes nothing (unless reset)."""
    ensure_users()
    env = ensure_environment()
    session = LoopSession.objects.filter(slug=SLUG).first()
    if session is not None and reset:
        session.delete()
        FailureSignature.objects.filter(environment=env).delete()
        Deployment.objects.filter(environment=env).delete()
        session = None
    if session is not None and session.runs.exists():
        stdout(f"demo already loaded: session '{SLUG}' has {session.runs.count()} runs")
        return session
    manifest = json.loads((RESULTS_DIR / "manifest.json").read_text())
    users = get_user_model().objects
    engineer, operator = users.get(username="eli"), users.get(username="olivia")
    with transaction.atomic():
        session, _ = LoopSession.objects.update_or_create(
            slug=SLUG,
            defaults={
                "environment": env,
                "title": "Golden path: all 1000+ e2e staging tests pass",
                "mission": (
                    "Execute the test-deploy loop until ALL 1000+ e2e staging tests pass. P1 critical tests first: "
                    "$120K+ MRR at risk while WebSocket agent execution is broken."
                ),
                "goal_pass_rate": 100.0,
                "goal_priority": "P1",
                "tracking_url": "https://github.com/example/backend/issues/116",
            },
        )
        for position, (text, kind, params) in enumerate(
            [
                ("100% P1 pass rate", SuccessCriterion.Kind.PASS_RATE, {"priority": "P1", "threshold": 100}),
                ("No 0.00 s e2e tests (mocked or not really run)", SuccessCriterion.Kind.NO_SUSPECTS, {}),
                ("All five agent events delivered", SuccessCriterion.Kind.MANUAL, {}),
                ("WebSocket latency within target", SuccessCriterion.Kind.METRIC, {"metric": "ws_latency_ms"}),
                ("The four golden-path P1 tests pass", SuccessCriterion.Kind.TESTS_PASS, {"tests": P1_NAMED}),
                ("Real staging connectivity validated", SuccessCriterion.Kind.MANUAL, {}),
            ]
        ):
            SuccessCriterion.objects.get_or_create(
                session=session, text=text, defaults={"kind": kind, "params": params, "position": position}
            )
    story = _Story(env, session, engineer, operator)
    for cycle in manifest["cycles"]:
        story.play_cycle(cycle, stdout)
    stdout(f"demo loaded: session '{SLUG}' with {len(manifest['cycles'])} cycles")
    return session


def deployed_revision() -> tuple[str, str] | None:
    """The revision the demo's environment says is deployed: that of its latest succeeded deployment.

    ``scripts/run.sh`` starts the example target at this revision, so that what the demo shows as
    deployed (r7 after a fresh load, or whatever an operator deployed since) is really listening on
    its port, and "Run tests" reaches it. (revision, commit); None when the demo is not loaded or has
    no such deployment.
    """
    session = LoopSession.objects.filter(slug=SLUG).only("environment_id").first()
    if session is None:
        return None
    return (
        Deployment.objects.filter(environment_id=session.environment_id, status=WorkStatus.SUCCEEDED)
        .order_by(F("finished_at").desc(nulls_last=True), "-id")
        .values_list("revision", "commit_sha")
        .first()
    )


class _Story:
    """Deploy, ingest the cycle's real results, then write what the engineers concluded."""

    def __init__(self, env: Environment, session: LoopSession, engineer, operator) -> None:
        self.env, self.session, self.engineer, self.operator = env, session, engineer, operator
        self.analyses: dict[str, Analysis] = {}

    def play_cycle(self, cycle: dict, stdout: Callable[[str], None]) -> None:
        number, revision = cycle["cycle"], cycle["revision"]
        cycle_row = resolve_cycle(self.session, number)
        deployment = Deployment.objects.create(
            environment=self.env,
            cycle=cycle_row,
            revision=revision,
            commit_sha=_commit(self.env, revision),
            status=WorkStatus.SUCCEEDED,
            triggered_by=self.operator,
            exit_code=0,
            command=["python", "deploy.py", "--revision", revision, "--commit", _commit(self.env, revision)],
            log_tail=f"deploying {revision}\nservice healthy\ndeployed {revision} {_commit(self.env, revision)}\n",
        )
        # Queued, then started, then finished, in that order: created_at is stamped at the insert.
        deployment.started_at, deployment.finished_at = deployment.created_at, timezone.now()
        deployment.save(update_fields=["started_at", "finished_at"])
        on_deployment_succeeded(deployment)
        full = None
        for name in cycle["files"]:
            path = RESULTS_DIR / name
            with path.open("rb") as f:
                run = ingest_file(f, name, session_slug=SLUG, cycle_number=number).run
            run.deployment = deployment
            run.save(update_fields=["deployment"])
            if "e2e" in name or "full" in name:
                full = run
            stdout(f"  cycle {number} ({revision}): run {run.pk} {name}: {run.passed}/{run.total} passed")
        rerun_file = RERUNS_DIR / f"cycle-{number:02d}-{revision}-rerun.xml.gz"
        failed = _failed_nodeids(full) if full is not None else set()
        rerun_xml = _rerun_of(rerun_file, failed) if failed and rerun_file.exists() else None
        if rerun_xml is not None:
            rerun = ingest_file(io.BytesIO(rerun_xml), rerun_file.name, session_slug=SLUG, cycle_number=number).run
            TestRun.objects.filter(pk=rerun.pk).update(
                deployment=deployment,
                rerun_of=full,
                scope=TestRun.Scope.FAILED,
                label=f"rerun of run {full.pk}: failed",
            )
            # The rerun was a full run while it was ingested; the checklist follows the full runs only.
            latest = criteria.latest_full_run(self.session)
            if latest is not None:
                criteria.evaluate_session(self.session, latest)
            stdout(
                f"  cycle {number} ({revision}): rerun {rerun.pk} of failed tests: {rerun.passed}/{rerun.total} passed"
            )
        self.after(number)

    def after(self, number: int) -> None:
        """What the team wrote after each cycle, modelled on the seed logs."""
        env, eng = self.env, self.engineer
        if number == 1:
            sig = _signature(env, "1011")
            if sig:
                _title(sig, "WebSocket 1011 internal error", eng)
                first = _analysis(
                    sig,
                    eng,
                    "WebSocket connections receive 1011 internal errors during agent execution.",
                    [
                        (
                            "Why are WebSocket connections closed with 1011?",
                            "The server raises while handling the connection.",
                        ),
                        (
                            "Why does the server raise?",
                            "Readiness validation fails right after the Redis connection succeeds.",
                        ),
                        (
                            "Why does readiness validation fail?",
                            "A timing gap between Redis connect and background task stabilisation.",
                        ),
                        ("Why is there a timing gap?", "The grace period is too short on Cloud Run cold starts."),
                        ("Why was it too short?", "It was tuned on local Redis, not on staging."),
                    ],
                    "Redis connection race condition in the staging environment.",
                    "Timing gap between Redis connection success and background task stabilisation.",
                    Analysis.Status.HYPOTHESIS,
                )
                sig.refresh_from_db()
                triage.set_status(sig, FailureSignature.Status.ROOT_CAUSED, sig.version, eng)
                _fix(first, eng, _commit(env, "r2"), "fix: resolve WebSocket 1011 race condition in staging")
                self.analyses["1011-first"] = first
            routing = _signature(env, "unknown_message_type", "unknown message")
            if routing:
                _title(routing, "execute_agent not routed: unknown_message_type", eng)
                analysis = _analysis(
                    routing,
                    eng,
                    "579 tests get an unknown_message_type error event for execute_agent.",
                    [
                        ("Why is execute_agent unknown?", "Only the canonical start_agent message is routed."),
                        (
                            "Why only start_agent?",
                            "The routing table was written before the e2e suite's alias existed.",
                        ),
                    ],
                    "execute_agent is missing from the WebSocket message routing table.",
                    "Most 1011 tests fail here first: the routing error hides the 1011 behind it.",
                    Analysis.Status.CONFIRMED,
                )
                _fix(analysis, eng, _commit(env, "r2"), "fix: route execute_agent to START_AGENT")
            timeout = _signature(env, "timeout")
            if timeout:
                _title(timeout, "Timeout waiting for agent_completed", eng)
                timeout.refresh_from_db()
                triage.set_status(timeout, FailureSignature.Status.INVESTIGATING, timeout.version, eng)
        elif number == 2:
            first = self.analyses.get("1011-first")
            if first:
                _refute(first, eng)
                second = _analysis(
                    first.signature,
                    eng,
                    "1011 internal errors persist after the Redis grace-period fix.",
                    [
                        ("Why do 1011 errors persist?", "The message pipeline still crashes while logging."),
                        ("Why does logging crash?", "json.dumps receives a WebSocketState enum."),
                        (
                            "Why is an enum logged?",
                            "The pipeline logs the raw connection state for structured logging.",
                        ),
                        ("Why was it missed?", "The first fix only made the auth path safe."),
                        (
                            "Why only the auth path?",
                            "Six duplicate helpers exist; only one was fixed (SSOT violation).",
                        ),
                    ],
                    "WebSocketState enum is not JSON-serializable in the message pipeline's structured logging.",
                    "Duplicate _safe_websocket_state_for_logging helpers; the fix went to the wrong one.",
                    Analysis.Status.CONFIRMED,
                )
                _fix(
                    second,
                    eng,
                    _commit(env, "r3"),
                    "fix: SSOT safe_websocket_state_for_logging in the message pipeline",
                )
            token = _signature(env, "token")
            if token:
                _title(token, "Token validation failed (JWT secret mismatch)", eng)
                analysis = _analysis(
                    token,
                    eng,
                    "E2E tokens rejected with 'Token validation failed'.",
                    [
                        (
                            "Why are tokens rejected?",
                            "The backend validates with a different secret than the test framework signs with.",
                        ),
                        ("Why different secrets?", "Secret resolution diverged between services."),
                    ],
                    "JWT secret resolution diverged between the auth service and the backend.",
                    "No single source of truth for the JWT secret.",
                    Analysis.Status.CONFIRMED,
                )
                _fix(analysis, eng, _commit(env, "r4"), "fix: unify JWT secret resolution")
            api = _all_signatures(env, "/api/v1", "404")
            if api:
                # One missing route table, one fingerprint per URL: merged into the health check's.
                main = next((s for s in api if "/api/v1/health -> http 404" in s.sample_message.lower()), api[0])
                main = _merge_all(main, api, eng)
                _title(main, "/api/v1 routes missing (HTTP 404)", eng)
                analysis = _analysis(
                    main,
                    eng,
                    "Every /api/v1 endpoint answers 404 while /api works.",
                    [
                        ("Why 404 under /api/v1?", "The service only mounts its routes under /api."),
                        (
                            "Why do the tests call /api/v1?",
                            "The e2e suite follows the public API docs, which are versioned.",
                        ),
                    ],
                    "No /api/v1 compatibility layer in the staging backend.",
                    "Tests and deployed routes disagreed on the API's path; nothing checked that they match.",
                    Analysis.Status.CONFIRMED,
                )
                _fix(analysis, eng, _commit(env, "r4"), "feat: /api/v1 routing compatibility layer")
        elif number == 3:
            timeout = _signature(env, "timeout")
            if timeout:
                analysis = _analysis(
                    timeout,
                    eng,
                    "Streaming requests never receive agent_completed.",
                    [
                        ("Why no agent_completed?", "The stream finalizer never runs."),
                        ("Why does the finalizer not run?", "It waits for a sentinel the producer never sends."),
                    ],
                    "Stream finalizer waits for a sentinel that is never sent.",
                    "Streaming was only tested with mocked producers (0.00 s tests).",
                    Analysis.Status.CONFIRMED,
                )
                _fix(analysis, eng, _commit(env, "r5"), "fix: stream finalizer emits agent_completed")
        elif number == 5:
            leak = _signature(env, "another user")
            if leak:
                others = [*_all_signatures(env, "foreign threads"), *_all_signatures(env, "context", "counts")]
                leak = _merge_all(leak, others, eng)
                _title(leak, "Cross-user thread leak: another user's thread is listed", eng)
                analysis = _analysis(
                    leak,
                    eng,
                    "Users see each other's threads once UserExecutionContext isolation is on.",
                    [
                        ("Why are foreign threads listed?", "The per-user context store uses one scope for everybody."),
                        ("Why one scope?", "Thread history is keyed by agent, not by user context."),
                    ],
                    "Thread history is not scoped to the UserExecutionContext.",
                    "The isolation tests were 0.00 s passes until r5: the leak was there all along.",
                    Analysis.Status.CONFIRMED,
                )
                _fix(analysis, eng, _commit(env, "r6"), "fix: scope thread history per user")
        elif number == 6:
            snapshot = _signature(env, "status snapshot")
            if snapshot:
                _title(snapshot, "Agent status snapshot half-refreshed (flaky)", eng)
                analysis = _analysis(
                    snapshot,
                    eng,
                    "test_agent_registry_status_snapshot_consistent fails at random and passes on rerun.",
                    [
                        (
                            "Why does the snapshot show an agent as refreshing?",
                            "list_agents reads the cache while it is being rebuilt.",
                        ),
                        (
                            "Why is it read while rebuilt?",
                            "The r3 snapshot cache swaps entries one by one, not atomically.",
                        ),
                    ],
                    "The status snapshot cache is rebuilt in place, without a lock or an atomic swap.",
                    "A performance change (r3) introduced the race; only a rerun made it visible.",
                    Analysis.Status.CONFIRMED,
                )
                _fix(analysis, eng, _commit(env, "r7"), "fix: build agent status snapshot atomically")
