"""The Markdown report: the seed logs' shape, with the five whys and whether each fix was verified.

User text never changes the report's structure: the hostile report below is read back with a real
CommonMark parser (markdown-it-py, with GFM tables), as a wiki or an issue tracker would render it.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone
from markdown_it import MarkdownIt
from markdown_it.token import Token

from sessions.demo import loader
from sessions.models import (
    Analysis,
    Deployment,
    FailureSignature,
    Fix,
    LoopSession,
    SignatureCategory,
    SuccessCriterion,
    TestCase,
    TestRun,
    WhyStep,
    WorkStatus,
)
from sessions.services import triage
from sessions.services.export import _cell, _code, _fence, _inline
from sessions.tests.test_pages import Case, ingest

pytestmark = pytest.mark.django_db


def test_the_demo_report_reads_like_a_seed_log(client, viewer) -> None:
    loader.load(lambda line: None)
    client.force_login(viewer)
    response = client.get(reverse("session_export", args=["demo"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="demo-report.md"'
    text = response.content.decode()
    for heading in ("# Golden path", "## Mission", "## Summary", "## Success criteria", "## Results per cycle",
                    "## Key metrics per cycle", "## Metrics against targets", "## Failures and their five whys"):  # fmt: skip
        assert heading in text, heading
    assert "Green at cycle" in text
    assert "- [x] 100% P1 pass rate" in text
    assert "| Cycle | Deploy | Run |" in text
    assert "### WebSocket 1011 internal error" in text
    assert "#### Five whys — Refuted" in text and "*Refuted: this root cause was disproved by a later run.*" in text
    assert "**Did not fix**" in text and "**Verified**, deployed by deployment" in text
    assert "**The error behind the error**:" in text
    assert "**Why 1**: Why are WebSocket connections closed with 1011?" in text
    assert "## Flaky tests" in text and "status_snapshot_consistent" in text


def test_an_excluded_run_is_marked_with_its_reason(client, viewer) -> None:
    session = loader.load(lambda line: None)
    run = TestRun.objects.filter(session=session).order_by("id").first()
    TestRun.objects.filter(pk=run.pk).update(excluded=True, counted=False, excluded_reason="staging | was down")
    client.force_login(viewer)
    text = client.get(reverse("session_export", args=["demo"])).content.decode()
    row = next(line for line in text.splitlines() if line.startswith("|") and f"run {run.pk}" in line)
    assert "excluded: staging \\| was down" in row  # the reason's pipe cannot split the table
    others = [line for line in text.splitlines() if line.startswith("|") and "excluded:" in line]
    assert others == [row]


def test_table_cells_and_fences_keep_the_reports_structure() -> None:
    assert _cell("a | b\nc") == "a \\| b c"
    assert _cell(None) == "—"
    fenced = _fence("x ``` y")
    assert fenced.startswith("````\n") and fenced.endswith("\n````")
    assert _fence("a\r\nb\rc") == "```\na\nb\nc\n```"


def test_inline_text_is_one_escaped_line() -> None:
    assert _inline("# h") == "\\# h"
    assert _inline("- item") == "\\- item" and _inline("+ item") == "\\+ item" and _inline("===") == "\\==="
    assert _inline("1. one") == "1\\. one" and _inline("12) twelve") == "12\\) twelve"
    assert _inline("<b>|`x`|*_[a](b)_*~&amp;") == "\\<b\\>\\|\\`x\\`\\|\\*\\_\\[a\\](b)\\_\\*\\~\\&amp;"
    assert _inline("Q&A") == "Q&A" and _inline("Why 1011?") == "Why 1011?"
    for separator in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029":
        assert _inline(f"a {separator} # b") == "a \\# b"
    assert _inline("  \n ") == "—"


def test_code_spans_outlast_the_backticks_inside() -> None:
    assert _code("a.py::test_x") == "`a.py::test_x`"
    assert _code("a`b``c") == "```a`b``c```"
    assert _code("`edge`") == "`` `edge` ``"
    assert _code("a|b", table=True) == "`a\\|b`" and _code("a|b") == "`a|b`"
    assert _code("x\n# y") == "`x # y`"


# -- a report of hostile text, read back by a CommonMark parser -------------------------------------


def hostile(tag: str) -> str:
    """Text that would open a fence, forge headings, lists, a table, HTML and links if taken as Markdown."""
    return (
        f"{tag} ```` \n````\n# forged {tag}\n- list\n1. one\n<script>x('{tag}')</script> |a|b `x` ``y`` *e* _u_ "
        "[l](javascript:x) &amp; ~~s~~\u2028### sep\n===\n---\n    code\n> q\n[r]: https://e.x/\n|x|y|\n|-|-|"
    )


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def markdown() -> MarkdownIt:
    """CommonMark with raw HTML on (the preset's default), plus GFM tables and strikethrough."""
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def plain(inline: Token) -> str:
    """The text a reader sees in an inline token: escapes resolved, line breaks as newlines."""
    out = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
    return "".join(out)


def headings_outside_fences(text: str) -> list[str]:
    """Lines that start with '#' and are not inside a fenced block (CommonMark's fence rules)."""
    found, fence = [], None
    for line in text.split("\n"):
        opening = re.match(r" {0,3}(`{3,}|~{3,})", line)
        if fence is None:
            if opening and not (opening.group(1)[0] == "`" and "`" in line[opening.end() :]):
                fence = opening.group(1)
            elif line.startswith("#"):
                found.append(line)
        elif re.fullmatch(rf" {{0,3}}{fence[0]}{{{len(fence)},}}[ \t]*", line):
            fence = None
    return found


@pytest.fixture
def hostile_session(engineer) -> LoopSession:
    """Every user-written string of a report, hostile: titles, mission, checklist, five whys, fixes..."""
    nodeid_name = "test_x[`a|b`]"
    run = ingest([Case(nodeid_name, "failed", 1.0, "AssertionError: boom"), Case("test_ok")], cycle=1,
                 label="e|2e `x`")  # fmt: skip
    session = run.session
    LoopSession.objects.filter(pk=session.pk).update(
        title=hostile("title"), mission=hostile("mission"), tracking_url="HTTPS://example.com/issues/1#a_b"
    )
    environment = session.environment
    environment.metric_targets = {"lat|ency `ms`\n# m": {"target": 50, "lower_is_better": True}}
    environment.save()
    TestRun.objects.filter(pk=run.pk).update(metrics={"lat|ency `ms`\n# m": 12.0})
    SuccessCriterion.objects.create(session=session, text=hostile("criterion"))
    category = SignatureCategory.objects.create(name="cat | `x`\n# c", pattern="never matches anything")
    signature = FailureSignature.objects.get()
    FailureSignature.objects.filter(pk=signature.pk).update(
        title=hostile("signature"), error_type="Err`or|\n# x", category=category,
        sample_message="Traceback\n```` not a fence end\n````\n# not a heading\n~~~\n",
    )  # fmt: skip
    analysis = Analysis.objects.create(
        signature=signature, problem=hostile("problem"), root_cause=hostile("root"),
        error_behind_error=hostile("behind"), author=engineer,
    )  # fmt: skip
    WhyStep.objects.create(analysis=analysis, question=hostile("question"), answer=hostile("answer"))
    deployment = Deployment.objects.create(
        environment=environment, cycle=run.cycle, revision="r1|`x`\n# rev", status=WorkStatus.SUCCEEDED
    )
    Fix.objects.create(analysis=analysis, sha="abcdef1234567", message=hostile("fix"), url="HTTPS://example.com/pr/1",
                       deployment=deployment, status=Fix.Status.DEPLOYED)  # fmt: skip
    Fix.objects.create(analysis=analysis, sha="1234567", url="javascript:alert(1)")  # stored before links were checked
    TestCase.objects.filter(name=nodeid_name).update(
        flaky_at=timezone.now(), flip_rate=0.5, flaky_key="r1 | r2\n# k", recent="PF"
    )
    return session


def test_hostile_text_never_changes_the_reports_structure(client, viewer, engineer, hostile_session) -> None:
    client.force_login(viewer)
    text = client.get(reverse("session_export", args=[hostile_session.slug])).content.decode()
    run = TestRun.objects.get()
    tokens = markdown().parse(text)

    headings = [(t.tag, plain(tokens[i + 1])) for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings[:-1] == [
        ("h1", one_line(hostile("title"))),
        ("h2", "Mission"),
        ("h2", "Summary"),
        ("h2", "Success criteria"),
        ("h2", "Results per cycle"),
        ("h2", "Key metrics per cycle"),
        ("h2", f"Metrics against targets (run {run.pk})"),
        ("h2", "Failures and their five whys"),
        ("h3", one_line(hostile("signature"))),
        ("h4", headings[-2][1]),
    ]
    assert headings[-2][1].startswith(f"Five whys — Hypothesis ({engineer.username}, ")
    assert headings[-1] == ("h2", "Flaky tests (1)")
    assert len(headings_outside_fences(text)) == len(headings)  # a plain line scan agrees

    types = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not types & {"html_block", "html_inline", "ordered_list_open", "code_block", "image", "s_open"}
    assert sum(t.type == "hr" for t in tokens) == 1  # the footer's rule, and no other
    fences = [t for t in tokens if t.type == "fence"]
    assert [f.content for f in fences] == ["Traceback\n```` not a fence end\n````\n# not a heading\n~~~\n"]
    assert sum(t.type == "blockquote_open" for t in tokens) == 1  # the answer to why 1, and no other

    # Every list item is one of ours: the checklist item, the signature's facts and the two fixes.
    items = [plain(tokens[i + 2]) for i, t in enumerate(tokens) if t.type == "list_item_open"]
    assert items[0] == "[ ] " + one_line(hostile("criterion"))
    assert [item.split(":")[0] for item in items[1:8]] == [
        "Status", "Category", "Error type", "In this session", "First seen", "Last seen", "Link",
    ]  # fmt: skip
    assert items[2] == "Category: cat | `x` # c" and items[3] == "Error type: Err`or| # x"
    assert items[8].startswith("🚀 abcdef123456 " + one_line(hostile("fix")) + " (HTTPS://example.com/pr/1) — ")
    assert items[8].endswith("(r1|`x` # rev)")
    assert items[9] == "⏳ 1234567 (javascript:alert(1)) — Pending"
    assert len(items) == 10

    # Only http(s) links are links: the tracking issue and the fix; never javascript:, never a forged one.
    links = [c.attrs["href"] for t in tokens for c in t.children or [] if c.type == "link_open"]
    assert links == ["HTTPS://example.com/issues/1#a_b", "HTTPS://example.com/pr/1"]

    # Multi-line text keeps its lines, each shown as written.
    paragraphs = [plain(tokens[i + 1]) for i, t in enumerate(tokens) if t.type == "paragraph_open"]
    mission = "\n".join(part.strip() for part in hostile("mission").splitlines() if part.strip())
    assert mission in paragraphs
    answer = "\n".join(part.strip() for part in hostile("answer").splitlines() if part.strip())
    assert answer in paragraphs
    for label in ("problem", "root", "behind"):
        assert any(p.endswith(": " + one_line(hostile(label))) for p in paragraphs), label
    assert f"Why 1: {one_line(hostile('question'))}" in paragraphs

    # Table cells stay cells: pipes, backticks and newlines in a cell do not make new ones.
    tables = [i for i, t in enumerate(tokens) if t.type == "table_open"]
    assert len(tables) == 4  # results per cycle, key metrics, metrics against targets, flaky tests
    rows = []
    for start in tables:
        end = next(i for i in range(start, len(tokens)) if tokens[i].type == "table_close")
        table_rows, row = [], []
        for token in tokens[start:end]:
            if token.type == "inline":
                row.append(plain(token))
            elif token.type == "tr_close":
                table_rows.append(row)
                row = []
        assert len({len(r) for r in table_rows}) == 1, table_rows
        rows.append(table_rows)
    results, _key_metrics, metrics, flaky = rows
    assert results[1][3] == "e|2e `x`.xml" and results[0][7] == "Priority pass rate"
    assert metrics[1][0] == "lat|ency `ms` # m"
    nodeid = TestCase.objects.get(name="test_x[`a|b`]").nodeid
    assert flaky[1][:3] == [nodeid, "50%", "r1 | r2 # k"]


# -- fix links --------------------------------------------------------------------------------------


@pytest.fixture
def analysis() -> Analysis:
    ingest([Case("test_ws", "failed", 1.0, "ConnectionClosedError: received 1011 (internal error)")], cycle=1)
    return triage.create_analysis(FailureSignature.objects.get(), None, "1011 on connect")


def add_fix(client, analysis: Analysis, url: str):
    analysis.refresh_from_db()
    data = {"version": analysis.version, "sha": "abcdef12", "url": url}
    return client.post(reverse("fix_add", args=[analysis.pk]), data, headers={"HX-Request": "true"})


@pytest.mark.parametrize("url", ["HTTPS://example.com/pr/1", "Http://example.com/x", "https://example.com/a?b=c#d"])
def test_a_fix_link_is_http_or_https_in_any_case(client, engineer, analysis, url) -> None:
    client.force_login(engineer)
    assert add_fix(client, analysis, url).status_code == 200
    assert Fix.objects.get(analysis=analysis).url == url


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JavaScript:alert(1)", "JAVASCRIPT://example.com/%0aalert(1)", "data:text/html,<b>x</b>",
     "vbscript:msgbox(1)", "ftp://example.com/x", "//example.com/x", "example.com", "https://", "https://exa mple.com",
     "https://example.com/\u2028x"],
)  # fmt: skip
def test_other_schemes_stay_refused_in_any_case(client, engineer, analysis, url) -> None:
    client.force_login(engineer)
    response = add_fix(client, analysis, url)
    assert response.status_code == 422
    assert "the link must be a URL that starts with http:// or https://" in response.content.decode()
    assert not Fix.objects.exists()
