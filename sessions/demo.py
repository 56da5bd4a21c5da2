"""The demo: the seeds' loop replayed on the example staging target.

Its results are files that real pytest wrote against real deploys of
`examples/staging` (see `examples/staging/make_results.py`), stored in
`sessions/demo_results/` and ingested here through the same path as any upload.
Deployments, five-whys analyses and fixes are added in the order an engineer
would have added them, so the fix lifecycle judges them for real: the first
1011 fix targets the wrong race condition and shows as "did not fix".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from . import roles
from .models import (
    Analysis,
    BusinessArea,
    Deployment,
    Environment,
    FailureSignature,
    Fix,
    ImpactRule,
    LoopSession,
    SignatureCategory,
    SuccessCriterion,
    WhyStep,
    WorkStatus,
)
from .services.ingestion import ingest_file, resolve_cycle
from .services.lifecycle import on_deployment_succeeded

RESULTS_DIR = Path(__file__).resolve().parent / "demo_results"
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
    ("product", r".", "#2563eb"),
]


def ensure_users() -> None:
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


def ensure_environment() -> Environment:
    revisions = json.loads((STAGING_DIR / "revisions.json").read_text())
    env, _ = Environment.objects.get_or_create(name="staging")
    env.description = "The example staging target in examples/staging: a WebSocket agent service and its e2e suite."
    env.working_dir = str(STAGING_DIR)
    env.deploy_command = ["{python}", "deploy.py", "--revision", "{revision}"]
    env.test_command = ["{python}", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
    env.env_vars = {}
    env.revisions = [{k: r[k] for k in ("revision", "commit", "message")} for r in revisions]
    env.default_revision = revisions[0]["revision"]
    env.timeout_s = 600
    env.metric_targets = {
        "ws_latency_ms": {"target": 50, "lower_is_better": True},
        "api_response_ms": {"target": 100, "lower_is_better": True},
    }
    env.save()
    for name, mrr in AREAS.items():
        BusinessArea.objects.update_or_create(name=name, defaults={"mrr": Decimal(mrr)})
    ImpactRule.objects.get_or_create(
        environment=env, match=ImpactRule.Match.GLOB, pattern="tests/test_priority1_critical_REAL.py::*",
        defaults={"priority": "P1", "area": BusinessArea.objects.get(name="chat"), "position": 0},
    )
    for position, (name, pattern, colour) in enumerate(CATEGORIES):
        SignatureCategory.objects.update_or_create(
            name=name, defaults={"pattern": pattern, "colour": colour, "position": position}
        )
    return env


def _signature(env: Environment, *needles: str) -> FailureSignature | None:
    for sig in FailureSignature.objects.filter(environment=env).order_by("-result_count"):
        text = f"{sig.error_type} {sig.normalized} {sig.sample_message}".lower()
        if all(n.lower() in text for n in needles):
            return sig
    return None


def _analysis(sig: FailureSignature, author, problem: str, whys: list[tuple[str, str]], root: str,  # noqa: ANN001
              behind: str, status: str) -> Analysis:
    analysis = Analysis.objects.create(
        signature=sig, problem=problem, root_cause=root, error_behind_error=behind, status=status, author=author
    )
    WhyStep.objects.bulk_create(
        [WhyStep(analysis=analysis, position=i, question=q, answer=a) for i, (q, a) in enumerate(whys)]
    )
    return analysis


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


class _Story:
    """Deploy, ingest the cycle's real results, then write what the engineers concluded."""

    def __init__(self, env: Environment, session: LoopSession, engineer, operator) -> None:  # noqa: ANN001
        self.env, self.session, self.engineer, self.operator = env, session, engineer, operator
        self.analyses: dict[str, Analysis] = {}

    def play_cycle(self, cycle: dict, stdout: Callable[[str], None]) -> None:
        number, revision = cycle["cycle"], cycle["revision"]
        cycle_row = resolve_cycle(self.session, number)
        now = timezone.now()
        deployment = Deployment.objects.create(
            environment=self.env, cycle=cycle_row, revision=revision, commit_sha=_commit(self.env, revision),
            status=WorkStatus.SUCCEEDED, triggered_by=self.operator, started_at=now - timedelta(seconds=20),
            finished_at=now, command=["python", "deploy.py", "--revision", revision],
            log_tail=f"deploying {revision}\nservice healthy\ndeployed {revision} {_commit(self.env, revision)}\n",
        )
        on_deployment_succeeded(deployment)
        for name in cycle["files"]:
            path = RESULTS_DIR / name
            with path.open("rb") as f:
                run = ingest_file(f, name, session_slug=SLUG, cycle_number=number).run
            run.deployment = deployment
            run.save(update_fields=["deployment"])
            stdout(f"  cycle {number} ({revision}): run {run.pk} {name}: {run.passed}/{run.total} passed")
        self.after(number)

    def after(self, number: int) -> None:
        """What the team wrote after each cycle, modelled on the seed logs."""
        env, eng = self.env, self.engineer
        if number == 1:
            sig = _signature(env, "1011")
            if sig:
                sig.title = "WebSocket 1011 internal error"
                sig.status = FailureSignature.Status.ROOT_CAUSED
                sig.save()
                first = _analysis(
                    sig, eng,
                    "WebSocket connections receive 1011 internal errors during agent execution.",
                    [
                        ("Why are WebSocket connections closed with 1011?", "The server raises while handling the connection."),
                        ("Why does the server raise?", "Readiness validation fails right after the Redis connection succeeds."),
                        ("Why does readiness validation fail?", "A timing gap between Redis connect and background task stabilisation."),
                        ("Why is there a timing gap?", "The grace period is too short on Cloud Run cold starts."),
                        ("Why was it too short?", "It was tuned on local Redis, not on staging."),
                    ],
                    "Redis connection race condition in the staging environment.",
                    "Timing gap between Redis connection success and background task stabilisation.",
                    Analysis.Status.HYPOTHESIS,
                )
                Fix.objects.create(analysis=first, sha=_commit(env, "r2"), author=eng,
                                   message="fix: resolve WebSocket 1011 race condition in staging")
                self.analyses["1011-first"] = first
            timeout = _signature(env, "timeout")
            if timeout:
                timeout.title = "Timeout waiting for agent_completed"
                timeout.status = FailureSignature.Status.INVESTIGATING
                timeout.save()
        elif number == 2:
            first = self.analyses.get("1011-first")
            if first:
                first.status = Analysis.Status.REFUTED
                first.save()
                second = _analysis(
                    first.signature, eng,
                    "1011 internal errors persist after the Redis grace-period fix.",
                    [
                        ("Why do 1011 errors persist?", "The message pipeline still crashes while logging."),
                        ("Why does logging crash?", "json.dumps receives a WebSocketState enum."),
                        ("Why is an enum logged?", "The pipeline logs the raw connection state for structured logging."),
                        ("Why was it missed?", "The first fix only made the auth path safe."),
                        ("Why only the auth path?", "Six duplicate helpers exist; only one was fixed (SSOT violation)."),
                    ],
                    "WebSocketState enum is not JSON-serializable in the message pipeline's structured logging.",
                    "Duplicate _safe_websocket_state_for_logging helpers; the fix went to the wrong one.",
                    Analysis.Status.CONFIRMED,
                )
                Fix.objects.create(analysis=second, sha=_commit(env, "r3"), author=eng,
                                   message="fix: SSOT safe_websocket_state_for_logging in the message pipeline")
            token = _signature(env, "token")
            if token:
                token.title = "Token validation failed (JWT secret mismatch)"
                token.save()
                analysis = _analysis(
                    token, eng, "E2E tokens rejected with 'Token validation failed'.",
                    [("Why are tokens rejected?", "The backend validates with a different secret than the test framework signs with."),
                     ("Why different secrets?", "Secret resolution diverged between services.")],
                    "JWT secret resolution diverged between the auth service and the backend.",
                    "No single source of truth for the JWT secret.", Analysis.Status.CONFIRMED,
                )
                Fix.objects.create(analysis=analysis, sha=_commit(env, "r4"), author=eng,
                                   message="fix: unify JWT secret resolution")
        elif number == 3:
            timeout = _signature(env, "timeout")
            if timeout:
                analysis = _analysis(
                    timeout, eng, "Streaming requests never receive agent_completed.",
                    [("Why no agent_completed?", "The stream finalizer never runs."),
                     ("Why does the finalizer not run?", "It waits for a sentinel the producer never sends.")],
                    "Stream finalizer waits for a sentinel that is never sent.",
                    "Streaming was only tested with mocked producers (0.00 s tests).", Analysis.Status.CONFIRMED,
                )
                Fix.objects.create(analysis=analysis, sha=_commit(env, "r5"), author=eng,
                                   message="fix: stream finalizer emits agent_completed")
