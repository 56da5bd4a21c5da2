"""Quarantine: set a test aside with a reason and an end date; end it early; mark a run's results.

Who may: engineers and up (the views and the API check ``roles.can_annotate``). What it changes: when
a run completes, ``mark_results`` flags the results of the tests quarantined at that moment
(``TestResult.quarantined``); the summary then leaves them out of the pass rate, the figures by priority
and MRR at risk, so criteria and cycles to green (which read those) leave them out too. Deciding it
once, at completion, keeps old runs as they were when a quarantine starts or ends later.

A quarantine ends by itself on its ``until`` date: every read compares the date (``Quarantine.objects
.active()``), so no job has to end it. The list and its release suggestions are
read by ``selectors/quarantine.py``.
"""

from __future__ import annotations

import datetime
from collections import Counter

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ..models import Environment, FailureSignature, Quarantine, TestCase, TestResult, TestRun, identity_hash
from .signatures import acting_user, root_of
from .triage import Invalid

REASON_MAX = 500
# A signature's tests quarantined at once: more than this is a signature to fix, not to set aside.
SIGNATURE_TESTS_MAX = 500


def clean_reason(reason: object) -> str:
    if reason is not None and not isinstance(reason, str):
        raise Invalid(f"reason: must be a string, got {type(reason).__name__}")
    text = " ".join(str(reason or "").split())
    if not text:
        raise Invalid("reason: say why the test is set aside (it is shown wherever the test is marked)")
    if len(text) > REASON_MAX:
        raise Invalid(f"reason: at most {REASON_MAX} characters")
    return text


def clean_until(until: object, today: datetime.date | None = None) -> datetime.date:
    """A date after today (YYYY-MM-DD): the quarantine ends on that date."""
    today = today or timezone.localdate()
    if isinstance(until, datetime.date):
        day = until
    elif isinstance(until, str):
        try:
            day = datetime.date.fromisoformat(until.strip())
        except ValueError:
            raise Invalid(f"until: a date as YYYY-MM-DD, got {until[:40]!r}") from None
    else:
        raise Invalid("until: a date as YYYY-MM-DD is required (the quarantine ends on that date)")
    if day <= today:
        raise Invalid(f"until: {day.isoformat()} is not after today ({today.isoformat()}); the quarantine ends on it")
    return day


def case_by_nodeid(environment: Environment, nodeid: object) -> TestCase:
    if not isinstance(nodeid, str) or not nodeid.strip():
        raise Invalid("test: the test's node id is required")
    case = TestCase.objects.filter(environment=environment, nodeid_hash=identity_hash(nodeid)).first()
    if case is None:
        raise Invalid(f"test: no test {nodeid[:200]!r} in environment {environment.name}")
    return case


def _put(
    case: TestCase, reason: str, until: datetime.date, user: AbstractBaseUser | None, signature_id: int | None
) -> tuple[Quarantine, bool]:
    """Open a quarantine for ``case``, or update its open one; (quarantine, created)."""
    today = timezone.localdate()
    current = Quarantine.objects.select_for_update().filter(case=case, ended_at__isnull=True).first()
    if current is not None and current.is_active(today):
        current.reason, current.until = reason, until
        current.created_by = acting_user(user) or current.created_by
        current.signature_id = signature_id or current.signature_id
        current.save(update_fields=["reason", "until", "created_by", "signature"])
        return current, False
    if current is not None:  # ended by itself on its date: close it so that the history reads right
        end = timezone.make_aware(datetime.datetime.combine(current.until, datetime.time.min))
        Quarantine.objects.filter(pk=current.pk).update(ended_at=end)
    created = Quarantine.objects.create(
        environment_id=case.environment_id,
        case=case,
        reason=reason,
        until=until,
        signature_id=signature_id,
        created_by=acting_user(user),
    )
    return created, True


def quarantine_test(
    environment: Environment, nodeid: object, reason: object, until: object, user: AbstractBaseUser | None
) -> tuple[Quarantine, bool]:
    """Quarantine one test of ``environment`` (by node id); Invalid names the bad field."""
    text, day = clean_reason(reason), clean_until(until)
    case = case_by_nodeid(environment, nodeid)
    with transaction.atomic():
        return _put(case, text, day, user, None)


def quarantine_case(
    case: TestCase, reason: object, until: object, user: AbstractBaseUser | None
) -> tuple[Quarantine, bool]:
    """Quarantine one test from its page."""
    text, day = clean_reason(reason), clean_until(until)
    with transaction.atomic():
        return _put(case, text, day, user, None)


def signature_case_ids(signature: FailureSignature) -> list[int]:
    """The tests a signature hit (and those of signatures merged into it), at most SIGNATURE_TESTS_MAX."""
    ids = [signature.pk, *FailureSignature.objects.filter(merged_into_id=signature.pk).values_list("pk", flat=True)]
    return list(
        TestResult.objects.filter(signature_id__in=ids)
        .values_list("case_id", flat=True)
        .order_by("case_id")
        .distinct()[: SIGNATURE_TESTS_MAX + 1]
    )


def quarantine_signature(
    signature: FailureSignature, reason: object, until: object, user: AbstractBaseUser | None
) -> int:
    """Quarantine every test the signature hit; returns how many tests are now quarantined by it."""
    text, day = clean_reason(reason), clean_until(until)
    root = FailureSignature.objects.get(pk=root_of(signature.pk))
    case_ids = signature_case_ids(root)
    if not case_ids:
        raise Invalid(f"signature {root.pk} hit no test: nothing to quarantine")
    if len(case_ids) > SIGNATURE_TESTS_MAX:
        raise Invalid(f"signature {root.pk} hit more than {SIGNATURE_TESTS_MAX} tests: fix it rather than set it aside")
    with transaction.atomic():
        for case in TestCase.objects.filter(pk__in=case_ids):
            _put(case, text, day, user, root.pk)
    return len(case_ids)


def end_quarantine(environment: Environment, nodeid: object, user: AbstractBaseUser | None) -> Quarantine:
    """End the test's active quarantine now; Invalid when the test is unknown or not quarantined."""
    case = case_by_nodeid(environment, nodeid)
    return end_case_quarantine(case, user)


def end_case_quarantine(case: TestCase, user: AbstractBaseUser | None) -> Quarantine:
    current = Quarantine.objects.active().filter(case=case).first()
    if current is None:
        raise Invalid(f"test: {case.nodeid[:200]!r} is not quarantined")
    current.ended_at, current.ended_by = timezone.now(), acting_user(user)
    Quarantine.objects.filter(pk=current.pk).update(ended_at=current.ended_at, ended_by=current.ended_by)
    return current


def mark_results(run: TestRun) -> Counter:
    """A step of the summary: flag the run's results of tests quarantined now; their outcomes, counted.

    One query for the environment's active quarantines; when there are some, one indexed select
    (``result_case_run``) and one update of those results only.
    """
    case_ids = list(
        Quarantine.objects.active().filter(environment_id=run.environment_id).values_list("case_id", flat=True)
    )
    if not case_ids:
        return Counter()
    rows = list(TestResult.objects.filter(case_id__in=case_ids, run_id=run.pk).values_list("id", "outcome"))
    if rows:
        TestResult.objects.filter(pk__in=[pk for pk, _ in rows]).update(quarantined=True)
    return Counter(outcome for _, outcome in rows)
