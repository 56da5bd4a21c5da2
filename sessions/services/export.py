"""A session as a Markdown report, in the spirit of the seed logs.

Mission, the checklist, results per cycle, the cycle table (pass rate, failures by class, MRR at
risk), metrics against their targets, every failure signature of the session with its five-whys
analyses and fixes (and whether they were verified), and the flaky tests.

The text is Markdown for people and tools, served as a download (``text/markdown``, attachment,
``nosniff``) and never rendered as HTML by loopdash — but whoever renders it (a wiki, an issue) must
see the report's own structure only. So no user text (titles, messages, five whys, criteria, names,
revisions, node ids) can open a heading, a list, a fence, a table cell, a link or HTML:

- text in an inline position is made one line (every line separator ``str.splitlines`` knows becomes
  a space) and backslash-escaped where CommonMark or GFM would read it as markup (``_inline``);
- identifiers go into code spans whose backtick fence is longer than any backtick run inside
  (``_code``), links become autolinks only when they are plain http(s) URLs (``_link``);
- multi-line text keeps its lines, each escaped (``_paragraphs``, ``_quote``); tracebacks go into a
  fence longer than any backtick run they hold (``_fence``).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db.models import Count, Max, Prefetch, Sum
from django.utils import timezone

from ..models import Analysis, FailureSignature, Fix, LoopSession, RunSignature
from ..selectors.cycles import chart_priority, cycle_table, cycles_to_green, latest_representative, session_cycles
from ..selectors.metrics import metric_rows
from ..selectors.sessions import flaky_tests, session_criteria
from ..templatetags.loopdash import cell_text, table_change

MAX_SIGNATURES = 100
MAX_TRACE = 4000


# Line breaks for CommonMark (\n, \r) and for every other reader (str.splitlines), and the spaces around them.
_BREAK = re.compile(r"\s*[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Inline markup: escapes, code spans, emphasis, links and images, HTML and autolinks, ATX headings,
# GFM table cells and strikethrough, and an "&" that starts an entity reference.
_MARKUP = re.compile(r"[\\`*_\[\]<>#|~]|&(?=#?\w+;)")
# What opens a block at the start of a line: a list item ("-", "+", "1." or "1)"), a thematic break or
# a setext underline ("---", "==="). "*", "#" and ">" are escaped everywhere already.
_BLOCK_START = re.compile(r"([-+=])|(\d+)(?=[.)])")
_HTTP_URL = re.compile(r"https?://[^\s<>`\x00-\x1f\x7f]+", re.IGNORECASE)


class Md(str):
    """Markdown this module wrote (a code span, a link): a table cell takes it as it is."""


def _one_line(value: object) -> str:
    return _CONTROL.sub(" ", _BREAK.sub(" ", str(value))).strip()


def _inline(value: object, *, line_start: bool = True) -> str:
    """User text for an inline position: one line, every character that would be markup escaped.

    ``line_start``: the text may begin a line (or follow a prefix that a renderer could drop), so a
    leading list marker or underline is escaped too; a table cell cannot start a block.
    """
    text = _MARKUP.sub(r"\\\g<0>", _one_line(value))
    if line_start and (m := _BLOCK_START.match(text)):
        end = m.end()
        text = "\\" + text if m.group(1) else f"{text[:end]}\\{text[end:]}"
    return text or "—"


def _code(value: object, *, table: bool = False) -> Md:
    """An identifier (node id, error type, commit) as a code span: nothing inside it is markup.

    CommonMark: the span's fence is a backtick run longer than any inside it, and a space pads text
    that starts or ends with a backtick (one is stripped from each side). In a GFM table a pipe still
    ends the cell inside a code span unless it is escaped, and the escape is removed there.
    """
    text = _one_line(value)
    if not text:
        return Md("—")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text[0] == "`" or text[-1] == "`":
        text = f" {text} "
    if table:
        text = text.replace("|", "\\|")
    return Md(f"{fence}{text}{fence}")


def _link(url: str) -> Md:
    """An http(s) URL as an autolink; anything else (an old ``javascript:`` link...) only as code."""
    text = _one_line(url)
    return Md(f"<{text}>") if _HTTP_URL.fullmatch(text) else _code(text)


def _cell(value: object) -> str:
    if isinstance(value, Md):
        return value
    return _inline("—" if value is None else value, line_start=False)


def _fence(text: str, lang: str = "") -> str:
    """A multi-line block (a traceback) as it was, in a fence longer than any backtick run it holds."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _paragraphs(text: str) -> list[str]:
    """Multi-line user text line by line: each line escaped, its line breaks and blank lines kept."""
    out: list[str] = []
    for raw in text.strip().splitlines():
        line = _inline(raw) if raw.strip() else ""
        if line and out and out[-1]:
            out[-1] += "  "  # a hard line break: the writer's lines stay lines
        if line or (out and out[-1]):
            out.append(line)
    return out


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in _paragraphs(text))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _money(value: object) -> str:
    return f"${float(value):,.0f}" if value is not None else "—"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _signatures(session: LoopSession) -> list[tuple[FailureSignature, int, int]]:
    """The session's signatures (not merged away), most results first, with their results and runs here."""
    rows = list(
        RunSignature.objects.filter(run__session=session, signature__merged_into__isnull=True)
        .values("signature_id")
        .annotate(results=Sum("results"), runs=Count("id"), last=Max("run_id"))
        .order_by("-results", "signature_id")[:MAX_SIGNATURES]
    )
    fixes = Fix.objects.select_related("deployment", "verified_by").order_by("created_at", "id")
    analyses = Analysis.objects.select_related("author").prefetch_related("steps", Prefetch("fixes", queryset=fixes))
    signatures = {
        s.pk: s
        for s in FailureSignature.objects.filter(pk__in=[r["signature_id"] for r in rows])
        .select_related("category", "first_seen_run__cycle", "last_seen_run__cycle")
        .prefetch_related(Prefetch("analyses", queryset=analyses.order_by("created_at", "id")))
    }
    merged: dict[int, list[Analysis]] = {}
    for analysis in analyses.filter(signature__merged_into_id__in=list(signatures)).select_related("signature"):
        merged.setdefault(analysis.signature.merged_into_id, []).append(analysis)
    out = []
    for r in rows:
        sig = signatures.get(r["signature_id"])
        if sig is not None:
            sig.all_analyses = [*sig.analyses.all(), *merged.get(sig.pk, [])]
            out.append((sig, r["results"], r["runs"]))
    return out


def _analysis_lines(analysis: Analysis) -> list[str]:
    author = analysis.author.get_username() if analysis.author else "unknown"
    lines = [
        f"#### Five whys — {analysis.get_status_display()} "
        f"({_inline(author)}, {timezone.localtime(analysis.updated_at):%Y-%m-%d %H:%M})",
        "",
    ]
    if analysis.status == Analysis.Status.REFUTED:
        lines += ["*Refuted: this root cause was disproved by a later run.*", ""]
    if analysis.problem:
        lines += [f"**Problem**: {_inline(analysis.problem)}", ""]
    for number, step in enumerate(analysis.steps.all(), start=1):
        lines += [f"**Why {number}**: {_inline(step.question)}", "", _quote(step.answer or "…"), ""]
    if analysis.root_cause:
        lines += [f"**Root cause**: {_inline(analysis.root_cause)}", ""]
    if analysis.error_behind_error:
        lines += [f"**The error behind the error**: {_inline(analysis.error_behind_error)}", ""]
    fixes = list(analysis.fixes.all())
    if fixes:
        lines += ["**Fixes**:", ""]
        for fix in fixes:
            where = ""
            if fix.deployment:
                where += f", deployed by deployment {fix.deployment.pk} ({_inline(fix.deployment.revision)})"
            if fix.verified_by:
                verb = "verified by" if fix.status == Fix.Status.VERIFIED else "judged by"
                where += f", {verb} run {fix.verified_by.pk}"
            mark = {"verified": "✅", "did_not_fix": "❌", "deployed": "🚀", "pending": "⏳"}.get(fix.status, "")
            message = f" {_inline(fix.message)}" if fix.message else ""
            link = f" ({_link(fix.url)})" if fix.url else ""
            lines.append(f"- {mark} {_code(fix.sha[:12])}{message}{link} — **{fix.get_status_display()}**{where}")
        lines.append("")
    return lines


def session_report(session: LoopSession) -> str:
    """The whole report as one string."""
    cycles = session_cycles(session)
    priority = chart_priority(session, cycles)
    green = cycles_to_green(session, cycles)
    base = settings.LOOPDASH_BASE_URL.rstrip("/")
    now = timezone.localtime()
    goal = f"{session.goal_pass_rate:g}%" + (
        f" of {_inline(session.goal_priority)} tests" if session.goal_priority else ""
    )
    out: list[str] = [
        f"# {_inline(session.title)}",
        "",
        f"**Date**: {now:%Y-%m-%d %H:%M}  ",
        f"**Environment**: {_inline(session.environment.name)}  ",
        f"**Goal**: {goal}  ",
        f"**Status**: {session.get_status_display()}  ",
    ]
    if session.tracking_url:
        out.append(f"**Tracking issue**: {_link(session.tracking_url)}  ")
    out.append(f"**Dashboard**: {base}{session.get_absolute_url()}")
    out.append("")
    if session.mission:
        out += ["## Mission", "", *_paragraphs(session.mission), ""]

    if green.reached_at is not None:
        verdict = f"Green at cycle {green.reached_at} ({green.cycles} cycle{'s' if green.cycles != 1 else ''})."
        if not green.green_now:
            verdict += " Not green in the latest cycle."
    else:
        verdict = f"Not green yet after {green.cycles} cycle{'s' if green.cycles != 1 else ''}."
    out += ["## Summary", "", verdict, ""]

    criteria = session_criteria(session)
    if criteria:
        out += ["## Success criteria", ""]
        for c in criteria:
            how = "" if not c.automatic else f" — *{_inline(c.detail or 'not evaluated yet')}*"
            out.append(f"- [{'x' if c.done else ' '}] {_inline(c.text)}{how}")
        out.append("")

    out += ["## Results per cycle", ""]
    rows = []
    for row in cycles:
        deploys = ", ".join(f"{d.revision} ({d.status})" for d in row.deployments) or "—"
        for run in row.runs:
            bucket = (run.by_priority or {}).get(priority) if priority else None
            rows.append(
                [
                    row.cycle.number,
                    deploys,
                    f"run {run.pk}" + (" ★" if run == row.representative else ""),
                    run.label,
                    run.status
                    + (" (incomplete)" if run.incomplete else "")
                    + (f" — excluded: {_one_line(run.excluded_reason) or 'no reason given'}" if run.excluded else ""),
                    f"{run.passed}/{run.executed}",
                    _pct(run.pass_rate),
                    _pct(bucket.get("pass_rate")) if isinstance(bucket, dict) else "—",
                    run.failed + run.errors,
                    run.suspect,
                    _money(run.mrr_at_risk),
                ]
            )
    header = ["Cycle", "Deploy", "Run", "Label", "Status", "Passed", "Pass rate", f"{priority or 'Priority'} pass rate",
              "Failing", "Suspect", "MRR at risk"]  # fmt: skip
    out += _table(header, rows) if rows else ["No runs yet."]
    out += [
        "",
        "★ the run that stands for its cycle (its latest complete full run). Excluded runs are listed but count"
        " in no figure.",
        "",
    ]

    table = cycle_table(cycles, priority)
    if table.cycles:
        out += ["## Key metrics per cycle", ""]
        out += _table(
            ["Metric", *[f"Cycle {n}" for n in table.cycles], "Change"],
            [
                [row.label.lstrip("· "), *(cell_text(cell, row.kind) for cell in row.cells), table_change(row)]
                for row in table.rows
            ],
        )
        out.append("")

    latest = latest_representative(cycles)
    metrics = metric_rows(latest, session.environment.metric_targets or {})
    if metrics:
        out += [f"## Metrics against targets (run {latest.pk if latest else '—'})", ""]
        out += _table(
            ["Metric", "Median", "Target", "Within target"],
            [
                [
                    m.name,
                    "—" if m.value is None else f"{m.value:g}",
                    "—" if m.target is None else f"{'≤' if m.lower_is_better else '≥'} {m.target:g}",
                    {True: "✅ yes", False: "❌ no", None: "—"}[m.ok],
                ]
                for m in metrics
            ],
        )
        out.append("")

    signatures = _signatures(session)
    out += ["## Failures and their five whys", ""]
    if not signatures:
        out += ["No failure in this session.", ""]
    for sig, results, runs in signatures:
        first = sig.first_seen_run
        last = sig.last_seen_run
        out += [
            f"### {_inline(sig.title)}",
            "",
            f"- **Status**: {sig.get_status_display()}",
            f"- **Category**: {_inline(sig.category.name) if sig.category else '—'}",
            f"- **Error type**: {_code(sig.error_type or '—')}",
            f"- **In this session**: {results} failing results in {runs} runs "
            f"(all sessions: {sig.result_count} results, {sig.test_count} tests, {sig.module_count} modules)",
            f"- **First seen**: run {first.pk} (cycle {first.cycle.number})" if first else "- **First seen**: —",
            f"- **Last seen**: run {last.pk} (cycle {last.cycle.number})" if last else "- **Last seen**: —",
            f"- **Link**: {base}{sig.get_absolute_url()}",
            "",
        ]
        if sig.sample_message:
            out += ["Sample message:", "", _fence(sig.sample_message[:MAX_TRACE]), ""]
        analyses = sig.all_analyses
        if not analyses:
            out += ["*No analysis yet.*", ""]
        for analysis in analyses:
            out += _analysis_lines(analysis)

    flaky, count = flaky_tests(session, limit=50)
    if flaky:
        out += [f"## Flaky tests ({count})", ""]
        out += _table(
            ["Test", "Flip rate", "Passed and failed on", "Recent (oldest first)"],
            [[_code(c.nodeid, table=True), f"{(c.flip_rate or 0) * 100:.0f}%", c.flaky_key, c.recent] for c in flaky],
        )
        out.append("")
    out += ["---", "", f"*Exported from loopdash on {now:%Y-%m-%d %H:%M %Z}.*", ""]
    return "\n".join(out)
