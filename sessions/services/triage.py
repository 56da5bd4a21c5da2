"""Triage writes: signature titles and statuses, merges, categories, five-whys analyses and their fixes.

Optimistic concurrency. A signature and an analysis each carry a ``version``; every edit form sends the
version it was rendered with, and the write is a compare-and-set (``UPDATE … WHERE version = v``). When
someone else got there first nothing is written and ``Conflict`` carries the current row, so that the
page can show the newer text beside the edit that was refused: no edit is ever silently lost.

Every change of an analysis (its fields, its steps, its fixes) bumps its version and leaves an
``AnalysisEdit`` with the user, the time and a snapshot of the whole analysis afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import (
    Analysis,
    AnalysisEdit,
    FailureSignature,
    Fix,
    RunSignature,
    TestResult,
    WhyStep,
)
from .lifecycle import on_fix_added
from .signatures import acting_user, record_event, recount_run_signatures, recount_signature, root_of

TITLE_MAX = 300
TEXT_MAX = 20_000
SHA_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")
_WEB_LINK = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)  # a fix's link


class Invalid(ValueError):
    """The request makes no sense (a bad status, an empty title, a merge into itself): HTTP 400."""


@dataclass
class Conflict(Exception):
    """A stale edit: ``current`` is the row as it is now (an Analysis or a FailureSignature)."""

    current: Any
    attempted: dict

    def __str__(self) -> str:
        return f"stale edit of {self.current!r}"


def _version(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Invalid("the form carries no version: reload the page") from None


def _text(value: object, limit: int = TEXT_MAX) -> str:
    text = str(value or "").replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise Invalid(f"at most {limit} characters")
    return text


# -- signatures ---------------------------------------------------------------------------------------------


def _bump_signature(signature: FailureSignature, version: object, attempted: dict, **fields: object) -> None:
    expected = _version(version)
    updated = FailureSignature.objects.filter(pk=signature.pk, version=expected).update(
        version=F("version") + 1, **fields
    )
    if not updated:
        raise Conflict(FailureSignature.objects.get(pk=signature.pk), attempted)
    signature.refresh_from_db()


def set_title(signature: FailureSignature, title: object, version: object, user: object) -> FailureSignature:
    new = _text(title, TITLE_MAX)
    if not new:
        raise Invalid("a title cannot be empty")
    old = signature.title
    with transaction.atomic():
        _bump_signature(signature, version, {"title": new}, title=new)
        if new != old:
            record_event(signature.pk, "title", f"{old} → {new}", user)
    return signature


def set_status(signature: FailureSignature, status: object, version: object, user: object) -> FailureSignature:
    if status not in FailureSignature.Status.values:
        raise Invalid(f"status must be one of {', '.join(FailureSignature.Status.values)}")
    old = signature.status
    with transaction.atomic():
        _bump_signature(signature, version, {"status": status}, status=status)
        if status != old:
            record_event(signature.pk, "status", f"{old} → {status} (by hand)", user)
    return signature


def merge(source: FailureSignature, target: FailureSignature, user: object) -> FailureSignature:
    """Merge ``source`` into ``target``: its results and run counts move, nothing is deleted.

    The source keeps its analyses, title and history and points to the target (``merged_into``);
    signatures merged into the source before now point to the target too, so chains stay one
    step long. Ingestion follows ``merged_into``, so future failures of the source's fingerprint
    land on the target. Returns the target as it is afterwards.
    """
    if source.pk == target.pk:
        raise Invalid("a signature cannot be merged into itself")
    if source.environment_id != target.environment_id:
        raise Invalid("both signatures must belong to the same environment")
    if source.merged_into_id:
        raise Invalid(f"signature {source.pk} is already merged into {source.merged_into_id}")
    root = root_of(target.pk)
    if root == source.pk:
        raise Invalid("the target is merged into this signature: that merge would make a loop")
    with transaction.atomic():
        locked = {
            s.pk: s
            for s in FailureSignature.objects.select_for_update().filter(pk__in=[source.pk, root]).order_by("pk")
        }
        source, target = locked[source.pk], locked[root]
        if source.merged_into_id:
            raise Invalid(f"signature {source.pk} is already merged into {source.merged_into_id}")
        run_ids = list(RunSignature.objects.filter(signature=source).values_list("run_id", flat=True))
        moved = TestResult.objects.filter(signature=source).update(signature=target)
        FailureSignature.objects.filter(merged_into=source).update(merged_into=target)
        RunSignature.objects.filter(signature=source).delete()
        recount_run_signatures(target.pk, run_ids)
        recount_signature(target.pk)
        FailureSignature.objects.filter(pk=source.pk).update(
            merged_into=target, result_count=0, test_count=0, module_count=0, version=F("version") + 1
        )
        FailureSignature.objects.filter(pk=target.pk).update(version=F("version") + 1)
        record_event(source.pk, "merged", f"merged into #{target.pk} {target.title}; {moved} results moved", user)
        record_event(target.pk, "merged", f"#{source.pk} {source.title} merged in; {moved} results moved", user)
    target.refresh_from_db()
    return target


# -- analyses -----------------------------------------------------------------------------------------------


def snapshot(analysis: Analysis) -> dict:
    """The whole analysis as it is now: what an AnalysisEdit keeps and the history shows."""
    return {
        "version": analysis.version,
        "status": analysis.status,
        "problem": analysis.problem,
        "root_cause": analysis.root_cause,
        "error_behind_error": analysis.error_behind_error,
        "steps": [
            {"id": s.pk, "question": s.question, "answer": s.answer}
            for s in WhyStep.objects.filter(analysis_id=analysis.pk).order_by("position", "id")
        ],
        "fixes": [
            {"sha": f.sha, "message": f.message, "status": f.status}
            for f in Fix.objects.filter(analysis_id=analysis.pk).order_by("created_at", "id")
        ],
    }


def _bump(analysis: Analysis, version: object, attempted: dict, **fields: object) -> None:
    """Compare-and-set the version (and fields); raise Conflict with the current analysis when stale."""
    expected = _version(version)
    updated = Analysis.objects.filter(pk=analysis.pk, version=expected).update(
        version=F("version") + 1, updated_at=timezone.now(), **fields
    )
    if not updated:
        raise Conflict(Analysis.objects.select_related("author").get(pk=analysis.pk), attempted)


def _record(analysis: Analysis, user: object, action: str) -> AnalysisEdit:
    analysis.refresh_from_db()
    return AnalysisEdit.objects.create(
        analysis=analysis, user=acting_user(user), action=action, snapshot=snapshot(analysis)
    )


def _status_after_analysis(signature: FailureSignature, analysis_status: str, user: object) -> None:
    """The lifecycle's hand-off from people: a first analysis means investigating, a confirmed one root-caused."""
    S = FailureSignature.Status
    if analysis_status == Analysis.Status.CONFIRMED and signature.status in (S.NEW, S.INVESTIGATING, S.REGRESSED):
        new = S.ROOT_CAUSED
    elif analysis_status == Analysis.Status.HYPOTHESIS and signature.status == S.NEW:
        new = S.INVESTIGATING
    else:
        return
    FailureSignature.objects.filter(pk=signature.pk).update(status=new, version=F("version") + 1)
    record_event(signature.pk, "status", f"{signature.status} → {new} (analysis {analysis_status})", user)


def create_analysis(signature: FailureSignature, user: object, problem: object = "") -> Analysis:
    text = _text(problem) or signature.title
    with transaction.atomic():
        analysis = Analysis.objects.create(signature=signature, problem=text, author=acting_user(user))
        _record(analysis, user, "created")
        _status_after_analysis(signature, analysis.status, user)
    return analysis


ANALYSIS_FIELDS = ("problem", "root_cause", "error_behind_error", "status")


def update_analysis(analysis: Analysis, data: dict, user: object) -> Analysis:
    """Edit the problem, root cause, error behind the error and status (whichever the form sends)."""
    fields: dict[str, object] = {}
    for name in ANALYSIS_FIELDS:
        if name not in data:
            continue
        if name == "status":
            if data[name] not in Analysis.Status.values:
                raise Invalid(f"status must be one of {', '.join(Analysis.Status.values)}")
            fields[name] = data[name]
        else:
            fields[name] = _text(data[name])
    if not fields:
        raise Invalid("nothing to change")
    attempted = {k: v for k, v in fields.items()}
    with transaction.atomic():
        _bump(analysis, data.get("version"), attempted, **fields)
        changed = ", ".join(name.replace("_", " ") for name in fields)
        _record(analysis, user, f"edited {changed}")
        if "status" in fields:
            _status_after_analysis(analysis.signature, str(fields["status"]), user)
    return analysis


def _renumber(analysis_id: int, order: list[int]) -> None:
    steps = {s.pk: s for s in WhyStep.objects.filter(analysis_id=analysis_id)}
    changed = []
    for position, pk in enumerate(order):
        step = steps[pk]
        if step.position != position:
            step.position = position
            changed.append(step)
    WhyStep.objects.bulk_update(changed, ["position"])


def _order(analysis_id: int) -> list[int]:
    return list(WhyStep.objects.filter(analysis_id=analysis_id).order_by("position", "id").values_list("pk", flat=True))


def add_step(analysis: Analysis, data: dict, user: object) -> WhyStep:
    question = _text(data.get("question"), 2000)
    answer = _text(data.get("answer"))
    if not question:
        raise Invalid("a why needs its question")
    with transaction.atomic():
        _bump(analysis, data.get("version"), {"question": question, "answer": answer})
        order = _order(analysis.pk)
        step = WhyStep.objects.create(analysis=analysis, position=len(order), question=question, answer=answer)
        _record(analysis, user, f"added why {len(order) + 1}")
    return step


def _step(analysis: Analysis, step_id: object) -> WhyStep:
    step = WhyStep.objects.filter(analysis=analysis, pk=step_id).first() if str(step_id).isdigit() else None
    return step


def update_step(analysis: Analysis, step_id: int, data: dict, user: object) -> WhyStep:
    question = _text(data.get("question"), 2000)
    answer = _text(data.get("answer"))
    if not question:
        raise Invalid("a why needs its question")
    with transaction.atomic():
        _bump(analysis, data.get("version"), {"question": question, "answer": answer})
        step = _step(analysis, step_id)
        if step is None:
            raise Conflict(analysis, {"question": question, "answer": answer})
        number = _order(analysis.pk).index(step.pk) + 1
        step.question, step.answer = question, answer
        step.save(update_fields=["question", "answer"])
        _record(analysis, user, f"edited why {number}")
    return step


def move_step(analysis: Analysis, step_id: int, direction: object, data: dict, user: object) -> WhyStep:
    if direction not in ("up", "down"):
        raise Invalid("direction must be up or down")
    with transaction.atomic():
        _bump(analysis, data.get("version"), {"move": direction})
        step = _step(analysis, step_id)
        if step is None:
            raise Conflict(analysis, {"move": direction})
        order = _order(analysis.pk)
        here = order.index(step.pk)
        there = here - 1 if direction == "up" else here + 1
        if 0 <= there < len(order):
            order[here], order[there] = order[there], order[here]
            _renumber(analysis.pk, order)
        _record(analysis, user, f"moved why {here + 1} {direction}")
    return step


def delete_step(analysis: Analysis, step_id: int, data: dict, user: object) -> int:
    """Delete a why; returns its index (0-based), where the keyboard goes next (the why that took its place)."""
    with transaction.atomic():
        _bump(analysis, data.get("version"), {"delete": step_id})
        step = _step(analysis, step_id)
        if step is None:
            raise Conflict(analysis, {"delete": step_id})
        order = _order(analysis.pk)
        number = order.index(step.pk) + 1
        order.remove(step.pk)
        step.delete()
        _renumber(analysis.pk, order)
        _record(analysis, user, f"deleted why {number}: {step.question[:80]}")
    return number - 1


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def deleted_analysis_detail(analysis_id: int, last: dict, user: object) -> str:
    """What the signature's activity keeps of a deleted analysis: who, and its last version in one line.

    SignatureEvent.detail holds 500 characters: the problem, each why, the root cause, the error behind
    the error and the fixes are shortened so that most parts show; what is past 500 is cut.
    """
    who = user.get_username() if getattr(user, "is_authenticated", False) else "loopdash"  # type: ignore[attr-defined]
    parts = [f"problem: {_one_line(last['problem'], 120)}" if last["problem"] else ""]
    parts += [
        f"why {n}: {_one_line(s['question'], 60)} — {_one_line(s['answer'], 40)}"
        for n, s in enumerate(last["steps"], 1)
    ]
    parts += [f"root cause: {_one_line(last['root_cause'], 100)}" if last["root_cause"] else ""]
    parts += [
        f"error behind the error: {_one_line(last['error_behind_error'], 60)}" if last["error_behind_error"] else ""
    ]
    parts += [f"fix {f['sha'][:12]} ({f['status']})" for f in last["fixes"]]
    head = f"analysis {analysis_id} deleted by {who} ({last['status']}, v{last['version']})"
    return _one_line("; ".join([head, *(p for p in parts if p)]), 500)


def delete_analysis(analysis: Analysis, data: dict, user: object) -> str:
    """Delete an analysis with its whys, fixes and edit history; the signature's activity keeps its last
    version in one line (who deleted it, its status, problem, whys, root cause and fixes).

    Stale-edit protection applies: the form's version must be the current one (else Conflict), so nobody
    deletes text they have not seen. Its fixes go with it: a fix still waiting for its verdict then
    judges nothing, which is why the page's confirmation names them. Returns the activity's line.
    """
    with transaction.atomic():
        _bump(analysis, data.get("version"), {"delete": f"analysis {analysis.pk}"})
        analysis.refresh_from_db()
        detail = deleted_analysis_detail(analysis.pk, snapshot(analysis), user)
        signature = FailureSignature.objects.only("id", "merged_into_id").get(pk=analysis.signature_id)
        record_event(signature.pk, "analysis", detail, user)
        if signature.merged_into_id:  # shown on the target's page: its activity says so too
            record_event(signature.merged_into_id, "analysis", detail, user)
        analysis.delete()
    return detail


def add_fix(analysis: Analysis, data: dict, user: object) -> Fix:
    """Attach a commit to the analysis; if a deployment already carried it, the lifecycle catches up."""
    sha = _text(data.get("sha"), 64)
    if not SHA_RE.match(sha):
        raise Invalid("a commit is 7 to 64 hexadecimal digits")
    message = _text(data.get("message"), 2000)
    url = _text(data.get("url"), 200)
    # Schemes are case-insensitive (RFC 3986): HTTPS:// is a web link; javascript: or data: in any case is not.
    if url and not _WEB_LINK.fullmatch(url):
        raise Invalid("the link must be a URL that starts with http:// or https://, without spaces")
    with transaction.atomic():
        _bump(analysis, data.get("version"), {"sha": sha, "message": message, "url": url})
        fix = Fix.objects.create(analysis=analysis, sha=sha.lower(), message=message, url=url, author=acting_user(user))
        _record(analysis, user, f"attached fix {sha[:12]}")
        record_event(analysis.signature_id, "fix", f"fix {sha[:12]} attached to analysis {analysis.pk}", user)

    on_fix_added(fix)
    return fix
