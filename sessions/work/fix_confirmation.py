"""Queue a fix confirmation: N reruns of a signature's tests on what is deployed now, all at once.

The request side only (rows written, tasks sent on commit); the verdict is given when the last of the
runs ends (``services/fix_confirmations.py``, a step of ``complete_run``). The runs are made by the
same queueing code as "Run this signature's tests" (``queueing`` with subset ``signature``: the tests
the signature hit the last time it was seen), so what they run and how they are refused is the same.

Only a *deployed* fix (waiting for its verdict) is confirmed: a verified fix whose signature comes back
becomes *regressed* by the lifecycle, and a fix that did not fix is replaced by another fix. One
confirmation at a time per fix.
"""

from __future__ import annotations

import re

from django.db import transaction

from .. import tasks
from ..models import (
    CONFIRMATION_RUNS_DEFAULT,
    CONFIRMATION_RUNS_MAX,
    FailureSignature,
    Fix,
    FixConfirmation,
    FixConfirmationRun,
    TestRun,
)
from ..services import fix_confirmations
from ..services.signatures import root_of
from . import queueing
from .errors import Refused
from .reaper import reap_if_due


def runs_count(value: object) -> int:
    """How many reruns: a whole number from 1 to CONFIRMATION_RUNS_MAX; empty: the default (3)."""
    if value is None or value == "":
        return CONFIRMATION_RUNS_DEFAULT
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,2}", text) or not 1 <= int(text) <= CONFIRMATION_RUNS_MAX:
        raise Refused(f"runs must be a whole number from 1 to {CONFIRMATION_RUNS_MAX}, got {value!r}", 400)
    return int(text)


def _fix_id(value: object) -> int:
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,18}", str(value or "")):
        raise Refused(f"fix must be a fix id (a whole number), got {value!r}", 400)
    return int(str(value))


def _fix_of(signature: FailureSignature, fix_id: int) -> Fix:
    """The fix, locked, if it belongs to an analysis of this signature or of one merged into it."""
    fix = Fix.objects.select_for_update(of=("self",)).select_related("analysis__signature").filter(pk=fix_id).first()
    if fix is None or signature.pk not in (fix.analysis.signature_id, fix.analysis.signature.merged_into_id):
        raise Refused(f"no fix {fix_id} on signature #{signature.pk}", 404)
    return fix


def request_confirmation(
    signature: FailureSignature, fix_id: object, runs: object = None, *, user: object = None
) -> FixConfirmation:
    """Queue ``runs`` reruns of the signature's tests to confirm a deployed fix (409 unless it is deployed).

    The runs go to the session of the run the signature was last seen in, on the environment's latest
    succeeded deployment, each labelled "confirm fix abc1234: 1 of 3". They are sent in one go once the
    rows are committed; if the broker refuses, every run still queued ends ``error`` through
    ``complete_run`` (queueing's rule), so the confirmation ends *incomplete*, and the caller gets a 503.
    """
    count = runs_count(runs)
    fix_id = _fix_id(fix_id)
    reap_if_due()
    # A confirmation whose last live run was deleted has no run left to end: judge it now (incomplete)
    # rather than block the fix for ever. Before the fix is locked: the judging step locks the
    # confirmation, then the fix, and so must everyone else.
    for stale in FixConfirmation.objects.filter(fix_id=fix_id, status=FixConfirmation.Status.RUNNING):
        fix_confirmations.settle(stale.pk)
    with transaction.atomic():
        fix = _fix_of(signature, fix_id)
        if fix.status != Fix.Status.DEPLOYED:
            raise Refused(
                f"fix {fix.sha[:12]} is {fix.get_status_display().lower()}: only a deployed fix, waiting for its "
                "verdict, is confirmed by reruns",
                409,
            )
        running = FixConfirmation.objects.filter(fix=fix, status=FixConfirmation.Status.RUNNING).first()
        if running is not None:
            raise Refused(f"fix {fix.sha[:12]} is being confirmed already (confirmation {running.pk})", 409)
        root = FailureSignature.objects.select_related("last_seen_run__session").get(pk=root_of(signature.pk))
        if root.last_seen_run is None:
            raise Refused(f"signature #{signature.pk} was not seen in any run: no test to run", 400)
        env = root.last_seen_run.session.environment
        current = queueing.deployed_now(env)
        if current is None:
            raise Refused(f"environment {env.name} has no succeeded deployment to confirm the fix on", 409)
        confirmation = FixConfirmation.objects.create(
            fix=fix, deployment=current, runs_requested=count, requested_by=queueing._user_or_none(user)
        )
        queued: list[TestRun] = []
        for number in range(1, count + 1):
            run = queueing._create_run(
                root.last_seen_run.session,
                user=user,
                source=TestRun.Source.UI,
                subset=queueing.SUBSET_SIGNATURE,
                signature=signature.pk,
                deployment=current,
            )
            on = f" on {current.revision}" if current.revision else ""
            run.label = f"confirm fix {fix.sha[:7]}: {number} of {count}{on}"[:200]
            run.save(update_fields=["label"])
            FixConfirmationRun.objects.create(confirmation=confirmation, run=run, number=number)
            queued.append(run)

        def send() -> None:
            for run in queued:
                tasks.run_tests.delay(run.pk)

        queueing._enqueue_on_commit(send, runs=queued)
    return confirmation
