"""Success criteria: a session's checklist. Manual items are ticked by people; automatic ones by runs.

Kinds (``SuccessCriterion.Kind``) and their ``params``:

- ``manual``: ``{}``; an engineer ticks it.
- ``pass_rate``: ``{"priority": "P1", "threshold": 100}``; the pass rate of that priority (of the whole run
  when the priority is empty) is at least the threshold.
- ``no_suspects``: ``{}``; the run executed tests and none was suspect (under 0.01 s in an e2e suite).
- ``tests_pass``: ``{"tests": [node ids]}``; every named test ran and passed (one bounded query).
- ``metric``: ``{"metric": "ws_latency_ms"}``; the run's median of that metric is within its target in
  ``Environment.metric_targets`` (at most the target, or at least it when ``lower_is_better`` is false).

Automatic items are evaluated from the latest run of the session that finished, ran to its end and
ran the whole suite (a rerun of failed or chosen tests does not speak for the suite).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from ..models import Environment, LoopSession, Outcome, SuccessCriterion, TestResult, TestRun, identity_hash
from .triage import Invalid

MAX_TESTS = 200
QUARANTINED = "quarantined"  # a named test's result left out of ``tests_pass`` (services/quarantine.py)


@dataclass(frozen=True, slots=True)
class Verdict:
    done: bool
    detail: str


def metric_status(value: float | None, spec: object) -> tuple[bool | None, float | None, bool]:
    """(within target or None when unknown, target, lower_is_better) for one metric value."""
    if not isinstance(spec, dict):
        return None, None, True
    try:
        target = float(spec.get("target"))
    except (TypeError, ValueError):
        return None, None, True
    lower = bool(spec.get("lower_is_better", True))
    if value is None:
        return None, target, lower
    return (value <= target if lower else value >= target), target, lower


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def clean_params(kind: str, raw: dict) -> dict:
    """Params of a criterion from a form's fields; raises ValueError with a message for people."""
    if kind == SuccessCriterion.Kind.PASS_RATE:
        threshold = _number(raw.get("threshold"))
        if threshold is None or not 0 <= threshold <= 100:
            raise ValueError("the threshold is a percentage between 0 and 100")
        return {"priority": str(raw.get("priority") or "").strip()[:10], "threshold": threshold}
    if kind == SuccessCriterion.Kind.TESTS_PASS:
        tests = raw.get("tests")
        if isinstance(tests, str):
            tests = [line.strip() for line in tests.splitlines()]
        tests = [t for t in (tests or []) if t][:MAX_TESTS]
        if not tests:
            raise ValueError("name at least one test (one node id per line)")
        return {"tests": tests}
    if kind == SuccessCriterion.Kind.METRIC:
        metric = str(raw.get("metric") or "").strip()
        if not metric:
            raise ValueError("name the metric")
        return {"metric": metric[:100]}
    if kind in (SuccessCriterion.Kind.MANUAL, SuccessCriterion.Kind.NO_SUSPECTS):
        return {}
    raise ValueError(f"kind must be one of {', '.join(SuccessCriterion.Kind.values)}")


def _pass_rate(run: TestRun, params: dict) -> Verdict:
    threshold = _number(params.get("threshold"))
    threshold = 100.0 if threshold is None else threshold
    priority = str(params.get("priority") or "")
    if priority:
        bucket = (run.by_priority or {}).get(priority)
        rate = bucket.get("pass_rate") if isinstance(bucket, dict) else None
        if rate is None:
            return Verdict(False, f"no executed {priority} test in run {run.pk}")
        label = f"{priority} pass rate"
    else:
        rate = run.pass_rate
        if rate is None:
            return Verdict(False, f"run {run.pk} executed no test")
        label = "pass rate"
    return Verdict(rate >= threshold, f"{label} {rate:.1f}% (needs ≥ {threshold:g}%)")


def _no_suspects(run: TestRun) -> Verdict:
    if not run.executed:
        return Verdict(False, f"run {run.pk} executed no test")
    if run.suspect:
        return Verdict(False, f"{run.suspect} suspect test{'s' if run.suspect != 1 else ''} under 0.01 s")
    return Verdict(True, "no test under 0.01 s")


def _metric(run: TestRun, env: Environment, params: dict) -> Verdict:
    name = str(params.get("metric") or "")
    spec = (env.metric_targets or {}).get(name)
    if spec is None:
        return Verdict(False, f"no target for {name} in environment {env.name}")
    value = _number((run.metrics or {}).get(name))
    ok, target, lower = metric_status(value, spec)
    if value is None:
        return Verdict(False, f"run {run.pk} reported no {name}")
    return Verdict(bool(ok), f"{name} {value:g} ({'≤' if lower else '≥'} {target:g} wanted)")


def _named_outcomes(run: TestRun, criteria: list[SuccessCriterion]) -> dict[str, str]:
    """The outcome of every test the criteria name, in one query: {node id hash: worst outcome}."""
    hashes = {identity_hash(t) for c in criteria for t in (c.params or {}).get("tests", [])[:MAX_TESTS]}
    if not hashes:
        return {}
    rows = TestResult.objects.filter(
        run=run, case__environment_id=run.environment_id, case__nodeid_hash__in=hashes
    ).values_list("case__nodeid_hash", "outcome", "quarantined")
    out: dict[str, str] = {}
    for key, outcome, quarantined in rows:
        if quarantined:  # a quarantined test does not count in criteria: left out of the named tests
            out[key] = QUARANTINED
        elif out.get(key, Outcome.PASSED) == Outcome.PASSED:
            out[key] = outcome
    return out


def _tests_pass(params: dict, outcomes: dict[str, str]) -> Verdict:
    named = [t for t in (params or {}).get("tests", [])[:MAX_TESTS] if t]
    tests = [t for t in named if outcomes.get(identity_hash(t)) != QUARANTINED]
    if not named:
        return Verdict(False, "no test named")
    if not tests:
        return Verdict(False, "every test named was quarantined in this run")
    missing = [t for t in tests if identity_hash(t) not in outcomes]
    failing = [t for t in tests if outcomes.get(identity_hash(t), Outcome.PASSED) != Outcome.PASSED]
    if missing or failing:
        parts = []
        if failing:
            parts.append(f"{len(failing)} not passing")
        if missing:
            parts.append(f"{len(missing)} not in the run")
        return Verdict(False, f"{len(tests) - len(missing) - len(failing)} of {len(tests)} passed; " + ", ".join(parts))
    return Verdict(True, f"all {len(tests)} passed")


def evaluate(criteria: list[SuccessCriterion], run: TestRun, env: Environment) -> dict[int, Verdict]:
    """Verdicts for the automatic criteria, from one run."""
    named = [c for c in criteria if c.kind == SuccessCriterion.Kind.TESTS_PASS]
    outcomes = _named_outcomes(run, named) if named else {}
    verdicts = {}
    for c in criteria:
        params = c.params if isinstance(c.params, dict) else {}
        if c.kind == SuccessCriterion.Kind.PASS_RATE:
            verdicts[c.pk] = _pass_rate(run, params)
        elif c.kind == SuccessCriterion.Kind.NO_SUSPECTS:
            verdicts[c.pk] = _no_suspects(run)
        elif c.kind == SuccessCriterion.Kind.TESTS_PASS:
            verdicts[c.pk] = _tests_pass(params, outcomes)
        elif c.kind == SuccessCriterion.Kind.METRIC:
            verdicts[c.pk] = _metric(run, env, params)
    return verdicts


def counts_for_criteria(run: TestRun) -> bool:
    return run.counted and run.scope == TestRun.Scope.ALL


def evaluate_session(session: LoopSession, run: TestRun) -> int:
    """Tick or untick the session's automatic criteria from ``run``; returns how many were evaluated."""
    criteria = [c for c in SuccessCriterion.objects.filter(session=session) if c.automatic]
    if not criteria:
        return 0
    verdicts = evaluate(criteria, run, session.environment)
    now = timezone.now()
    for c in criteria:
        verdict = verdicts.get(c.pk)
        if verdict is None:
            continue
        c.done, c.detail, c.evaluated_run_id, c.evaluated_at = verdict.done, verdict.detail[:300], run.pk, now
    SuccessCriterion.objects.bulk_update(criteria, ["done", "detail", "evaluated_run", "evaluated_at"])
    return len(criteria)


def latest_full_run(session: LoopSession) -> TestRun | None:
    return (
        TestRun.objects.filter(session=session, counted=True, scope=TestRun.Scope.ALL, summary_written=True)
        .select_related("environment")
        .order_by("-created_at", "-id")
        .first()
    )


def evaluate_run(run: TestRun) -> int:
    """A step of ``run_completion.complete_run``: a complete full run re-evaluates its session's automatic criteria."""
    if not counts_for_criteria(run):
        return 0
    session = LoopSession.objects.select_related("environment").get(pk=run.session_id)
    return evaluate_session(session, run)


def reevaluate(criterion: SuccessCriterion) -> None:
    """After an engineer added or changed an automatic criterion: evaluate it from the latest full run."""
    if not criterion.automatic:
        return
    run = latest_full_run(criterion.session)
    if run is None:
        SuccessCriterion.objects.filter(pk=criterion.pk).update(
            done=False, detail="no complete run yet", evaluated_run=None, evaluated_at=None
        )
        return
    verdict = evaluate([criterion], run, criterion.session.environment).get(criterion.pk)
    if verdict is not None:
        SuccessCriterion.objects.filter(pk=criterion.pk).update(
            done=verdict.done, detail=verdict.detail[:300], evaluated_run=run, evaluated_at=timezone.now()
        )


# -- editing the checklist (engineers) ---------------------------------------------------------------------


def _fields(data: dict) -> tuple[str, str, dict]:
    text = str(data.get("text") or "").strip()
    if not text:
        raise Invalid("say what has to be true")
    if len(text) > 500:
        raise Invalid("at most 500 characters")
    kind = str(data.get("kind") or SuccessCriterion.Kind.MANUAL)
    try:
        params = clean_params(kind, data)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return text, kind, params


def add_criterion(session: LoopSession, data: dict, user: object) -> SuccessCriterion:
    text, kind, params = _fields(data)
    last = SuccessCriterion.objects.filter(session=session).order_by("-position").values_list("position", flat=True)
    criterion = SuccessCriterion.objects.create(
        session=session,
        text=text,
        kind=kind,
        params=params,
        position=(last.first() or 0) + 1,
        updated_by=user if getattr(user, "is_authenticated", False) else None,
        updated_at=timezone.now(),
    )
    reevaluate(criterion)
    criterion.refresh_from_db()
    return criterion


def update_criterion(criterion: SuccessCriterion, data: dict, user: object) -> SuccessCriterion:
    text, kind, params = _fields(data)
    criterion.text, criterion.kind, criterion.params = text, kind, params
    criterion.updated_by = user if getattr(user, "is_authenticated", False) else None
    criterion.updated_at = timezone.now()
    criterion.save(update_fields=["text", "kind", "params", "updated_by", "updated_at"])
    reevaluate(criterion)
    criterion.refresh_from_db()
    return criterion


def tick(criterion: SuccessCriterion, done: bool, user: object) -> SuccessCriterion:
    """Tick or untick a manual item; automatic items follow the runs and cannot be ticked by hand."""
    if criterion.automatic:
        raise Invalid("this item ticks itself from the latest complete run")
    criterion.done = done
    criterion.updated_by = user if getattr(user, "is_authenticated", False) else None
    criterion.updated_at = timezone.now()
    criterion.save(update_fields=["done", "updated_by", "updated_at"])
    return criterion


def delete_criterion(criterion: SuccessCriterion) -> None:
    criterion.delete()
