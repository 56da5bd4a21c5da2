"""Real runners, run for real: loopdash's totals against each runner's own summary.

Every difference between a runner's count and loopdash's is a documented consequence of loopdash's
counting rules (docs/INGESTION.md, Counting), or of what a reporter leaves out of its file; each is
named and explained below, and everything else must match exactly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sessions.ingest import parse
from sessions.ingest.records import ParsedResult

HERE = Path(__file__).parent
SUITES = HERE / "runner_suites"
JS = HERE / "js_runners"
KEYS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")

# What suite_outcomes.py contains that pytest's summary line counts differently from loopdash:
# - a teardown error on a passing test: pytest says "1 passed" *and* "1 error"; loopdash: one error.
TEARDOWN_ERRORS_ON_PASSED = 1
# - a teardown error on a failing test: pytest says "1 failed" *and* "1 error"; loopdash: one failure.
TEARDOWN_ERRORS_ON_FAILED = 1
# - pytest 9 counts every failed subtest as one more "failed" beside its test (passing subtests are not
#   counted); loopdash counts the test once, failed.
FAILED_SUBTESTS = 1
# - JUnit has no element for a non-strict XPASS: pytest writes a plain (passed) <testcase>, so from
#   JUnit loopdash sees passed where the report-log (and pytest) say xpassed.
NON_STRICT_XPASSES = 1

INI = """\
[pytest]
markers =
    p1: priority one
    e2e: end to end
disable_test_id_escaping_and_forfeit_all_rights_to_community_support = true
"""
# The same tests, whichever file format carries them.
EXPECTED_NODEIDS = {
    "tests/e2e/test_broken.py",
    "tests/e2e/test_skipped_module.py",
    "tests/e2e/test_outcomes.py::test_param[a-ü]",
    "tests/e2e/test_outcomes.py::test_param[日本語]",
    "tests/e2e/test_outcomes.py::test_param[x.y]",
    "tests/e2e/test_outcomes.py::TestAgent::TestNested::test_inner[1]",
    "tests/e2e/test_outcomes.py::test_teardown_error_on_fail",
}


def loopdash_totals(path: Path) -> tuple[Counter[str], list[ParsedResult], object]:
    with path.open("rb") as fh:
        parsed = parse(fh, path.name)
        results = list(parsed.results)
    totals = Counter({key: 0 for key in KEYS})
    for result in results:
        totals["errors" if result.outcome == "error" else result.outcome.value] += 1
    return totals, results, parsed.info


# -- pytest ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runner_project")
    e2e = root / "tests" / "e2e"
    e2e.mkdir(parents=True)
    for name in ("outcomes", "broken", "skipped_module"):
        shutil.copy(SUITES / f"suite_{name}.py", e2e / f"test_{name}.py")
    (root / "pytest.ini").write_text(INI)
    return root


def run_pytest(project: Path, *args: str) -> Counter[str]:
    """Run pytest on the example project; return the counts of its own summary line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "COV_"))}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:django", "-c", "pytest.ini", *args]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    return pytest_summary(proc.stdout)


def pytest_summary(stdout: str) -> Counter[str]:
    last = [line for line in stdout.splitlines() if line.startswith("=") and " in " in line][-1]
    totals = Counter({key: 0 for key in KEYS})
    for count, word in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)\b", last):
        totals["errors" if word.startswith("error") else word] += int(count)
    return totals


def expected_from_pytest(summary: Counter[str], *, junit: bool) -> Counter[str]:
    expected = summary.copy()
    expected["passed"] -= TEARDOWN_ERRORS_ON_PASSED
    expected["errors"] -= TEARDOWN_ERRORS_ON_FAILED
    expected["failed"] -= FAILED_SUBTESTS
    if junit:
        expected["xpassed"] -= NON_STRICT_XPASSES
        expected["passed"] += NON_STRICT_XPASSES
    return expected


@pytest.fixture(scope="module")
def full_run(project: Path) -> tuple[Counter[str], Path]:
    """One run writing JUnit xunit1 and the report-log; plus xunit2 and junit_logging=all runs."""
    out = project / "out"
    out.mkdir()
    args = ("--continue-on-collection-errors", "-o", "junit_family=xunit1")
    summary = run_pytest(project, *args, f"--junitxml={out}/xunit1.xml", f"--report-log={out}/report.jsonl")
    assert run_pytest(project, "--continue-on-collection-errors", f"--junitxml={out}/xunit2.xml") == summary
    logging = ("-o", "junit_logging=all", f"--junitxml={out}/logging.xml")
    assert run_pytest(project, "--continue-on-collection-errors", *logging) == summary
    return summary, out


def test_pytest_summary_has_every_outcome(full_run: tuple[Counter[str], Path]) -> None:
    summary, _ = full_run
    assert all(summary[key] > 0 for key in KEYS), summary


@pytest.mark.parametrize("name", ["xunit1.xml", "xunit2.xml", "logging.xml"])
def test_junit_totals_match_pytest(full_run: tuple[Counter[str], Path], name: str) -> None:
    summary, out = full_run
    totals, results, info = loopdash_totals(out / name)
    assert totals == expected_from_pytest(summary, junit=True)
    assert info.format == "junit"
    assert EXPECTED_NODEIDS <= {r.nodeid for r in results}


def test_reportlog_totals_match_pytest(full_run: tuple[Counter[str], Path]) -> None:
    summary, out = full_run
    totals, results, info = loopdash_totals(out / "report.jsonl")
    assert totals == expected_from_pytest(summary, junit=False)
    assert (info.exitstatus, info.incomplete) == (1, False)
    assert EXPECTED_NODEIDS <= {r.nodeid for r in results}


def test_same_test_same_identity_in_every_format(full_run: tuple[Counter[str], Path]) -> None:
    _, out = full_run
    by_format = {name: loopdash_totals(out / name)[1] for name in ("xunit1.xml", "xunit2.xml", "report.jsonl")}
    ids = {name: sorted(r.nodeid for r in results) for name, results in by_format.items()}
    assert ids["xunit1.xml"] == ids["xunit2.xml"] == ids["report.jsonl"]
    files = {name: sorted({r.file for r in results}) for name, results in by_format.items()}
    assert files["xunit1.xml"] == files["xunit2.xml"] == files["report.jsonl"]


def test_same_failure_same_summary_in_every_format(full_run: tuple[Counter[str], Path]) -> None:
    """Outcome, phase, error type and message agree, so a failure gets one signature in both formats."""
    _, out = full_run
    junit = {r.nodeid: r for r in loopdash_totals(out / "xunit2.xml")[1]}
    reportlog = {r.nodeid: r for r in loopdash_totals(out / "report.jsonl")[1]}
    for nodeid, theirs in reportlog.items():
        ours = junit[nodeid]
        if theirs.outcome == "xpassed":
            assert ours.outcome == "passed"  # NON_STRICT_XPASSES
            continue
        summary = (ours.outcome, ours.phase, ours.error_type, ours.message)
        assert summary == (theirs.outcome, theirs.phase, theirs.error_type, theirs.message), nodeid
    setup_error = reportlog["tests/e2e/test_outcomes.py::test_setup_error"]
    assert (setup_error.phase, setup_error.error_type, setup_error.message) == (
        "setup",
        "ConnectionError",
        "ConnectionError: boom",
    )
    broken = reportlog["tests/e2e/test_broken.py"]
    assert (broken.outcome, broken.phase, broken.error_type) == ("error", "collect", "ModuleNotFoundError")


def test_reportlog_markers_and_properties(full_run: tuple[Counter[str], Path]) -> None:
    _, out = full_run
    results = {r.nodeid: r for r in loopdash_totals(out / "report.jsonl")[1]}
    assert results["tests/e2e/test_outcomes.py::test_pass_marked"].markers == ("e2e", "p1")
    assert results["tests/e2e/test_outcomes.py::test_pass"].markers == ()
    assert results["tests/e2e/test_outcomes.py::test_param[a-ü]"].markers == ()
    assert results["tests/e2e/test_outcomes.py::test_record"].properties == {"ticket": "LD-1", "attempts": "3"}
    junit = {r.nodeid: r for r in loopdash_totals(out / "xunit1.xml")[1]}
    assert junit["tests/e2e/test_outcomes.py::test_record"].properties == {"ticket": "LD-1", "attempts": "3"}


def test_junit_logging_all_keeps_output_of_failures_only(full_run: tuple[Counter[str], Path]) -> None:
    _, out = full_run
    results = {r.nodeid: r for r in loopdash_totals(out / "logging.xml")[1]}
    assert "--- system-out ---" in results["tests/e2e/test_outcomes.py::test_fail"].details
    assert results["tests/e2e/test_outcomes.py::test_pass_marked"].details == ""


def test_xdist_matches_pytest(project: Path) -> None:
    out = project / "out-xdist"
    out.mkdir()
    summary = run_pytest(
        project, "--continue-on-collection-errors", "-n", "2", f"--junitxml={out}/x.xml", f"--report-log={out}/x.jsonl"
    )
    junit_totals, junit_results, _ = loopdash_totals(out / "x.xml")
    log_totals, log_results, _ = loopdash_totals(out / "x.jsonl")
    assert junit_totals == expected_from_pytest(summary, junit=True)
    assert log_totals == expected_from_pytest(summary, junit=False)
    assert sorted(r.nodeid for r in junit_results) == sorted(r.nodeid for r in log_results)


def test_exitfirst_matches_pytest_exactly(project: Path) -> None:
    """-x stops at the first failure, before any test that pytest counts twice: no difference at all.

    pytest's exit status for ``-x`` is 1 (tests failed), not 2 (interrupted), so the run is not marked
    incomplete even though later tests never ran.
    """
    out = project / "out-x"
    out.mkdir()
    summary = run_pytest(
        project, "-x", "tests/e2e/test_outcomes.py", f"--junitxml={out}/x.xml", f"--report-log={out}/x.jsonl"
    )
    for name in ("x.xml", "x.jsonl"):
        totals, results, info = loopdash_totals(out / name)
        assert totals == summary
        assert len(results) == 3
    assert (info.exitstatus, info.incomplete) == (1, False)


def test_collection_error_without_continue_is_incomplete(project: Path) -> None:
    out = project / "out-collect"
    out.mkdir()
    summary = run_pytest(project, f"--junitxml={out}/c.xml", f"--report-log={out}/c.jsonl")
    assert (summary["errors"], summary["skipped"]) == (1, 1)
    for name in ("c.xml", "c.jsonl"):
        totals, results, info = loopdash_totals(out / name)
        assert totals == summary
        assert {r.nodeid for r in results} == {"tests/e2e/test_broken.py", "tests/e2e/test_skipped_module.py"}
    assert (info.exitstatus, info.incomplete) == (2, True)


# -- JavaScript runners -----------------------------------------------------------------------------------


def require_js_runners() -> None:
    """Skip without node_modules, except on CI (CI=true), where a missing install is a failure."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node is not on PATH")
    if not (JS / "node_modules" / "jest-junit").is_dir() or not (JS / "node_modules" / "mocha").is_dir():
        missing.append("sessions/tests/js_runners/node_modules is missing (npm ci --prefix sessions/tests/js_runners)")
    if not missing:
        return
    reason = "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"JavaScript runners are required on CI: {reason}")
    pytest.skip(reason)


def run_js(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=JS, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def test_node_builtin_runner(tmp_path: Path) -> None:
    require_js_runners()
    xml = tmp_path / "node.xml"
    proc = run_js(
        "node", "--test",
        "--test-reporter=junit", f"--test-reporter-destination={xml}",
        "--test-reporter=spec", "--test-reporter-destination=stdout",
        "node/",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    theirs = {k: int(v) for k, v in re.findall(r"^ℹ (\w+) (\d+)$", proc.stdout, re.M)}
    totals, results, _ = loopdash_totals(xml)
    # node counts todo tests apart from skips (a *failing* todo too: neither pass nor fail); JUnit marks
    # both <skipped>, and a <skipped> beside a <failure> is skipped (docs/INGESTION.md, Counting).
    assert totals == Counter(
        passed=theirs["pass"],
        failed=theirs["fail"] + theirs["cancelled"],
        errors=0,
        skipped=theirs["skipped"] + theirs["todo"],
        xfailed=0,
        xpassed=0,
    )
    assert sum(totals.values()) == theirs["tests"]
    # node's junit reporter writes classname="test" for every test: identity is classname::name.
    assert "test::top level passes" in {r.nodeid for r in results}
    failing_todo = next(r for r in results if r.name == "failing todo")
    assert failing_todo.outcome == "skipped"
    discount = next(r for r in results if r.name == "applies a discount")
    assert (discount.outcome, discount.error_type) == ("failed", "RangeError")


def test_jest_with_jest_junit(tmp_path: Path) -> None:
    require_js_runners()
    xml, report = tmp_path / "jest.xml", tmp_path / "jest.json"
    proc = run_js(
        "node", "node_modules/jest/bin/jest.js", "--ci", "--no-cache", "--no-watchman", "--rootDir", "jest",
        "--reporters=default", "--reporters=jest-junit", "--json", f"--outputFile={report}",
        env={"JEST_JUNIT_OUTPUT_FILE": str(xml)},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    theirs = json.loads(report.read_text())
    totals, results, _ = loopdash_totals(xml)
    # jest-junit writes test.todo() as a <testcase> with no child at all, which is a pass by the counting
    # rules; jest itself counts it as "todo". (Its root tests="..." attribute is one short, too.)
    assert totals == Counter(
        passed=theirs["numPassedTests"] + theirs["numTodoTests"],
        failed=theirs["numFailedTests"],
        errors=0,
        skipped=theirs["numPendingTests"],
        xfailed=0,
        xpassed=0,
    )
    assert sum(totals.values()) == theirs["numTotalTests"]
    assert "cart sums prices::cart sums prices" in {r.nodeid for r in results}
    gateway = next(r for r in results if r.name.endswith("times out on the gateway"))
    assert (gateway.error_type, gateway.message) == ("TypeError", "TypeError: gateway is not a function")


@pytest.mark.parametrize("include_pending", [False, True])
def test_mocha_with_mocha_junit_reporter(tmp_path: Path, include_pending: bool) -> None:
    require_js_runners()
    xml, report = tmp_path / "mocha.xml", tmp_path / "mocha.json"
    options = f"mochaFile={xml}" + (",includePending=true" if include_pending else "")
    mocha = ("node", "node_modules/mocha/bin/mocha.js")
    junit = run_js(*mocha, "--reporter", "mocha-junit-reporter", "--reporter-options", options, "mocha/")
    assert junit.returncode == 3, junit.stdout + junit.stderr  # mocha exits with its number of failures
    run_js(*mocha, "--reporter", "json", "--reporter-option", f"output={report}", "mocha/")
    stats = json.loads(report.read_text())["stats"]
    totals, results, _ = loopdash_totals(xml)
    # mocha-junit-reporter leaves pending tests out of the file unless includePending=true. A failed
    # "before all" hook is written as one failing <testcase>; mocha counts it in failures but not in
    # tests, and the two tests under the hook never ran: in neither count.
    assert totals == Counter(
        passed=stats["passes"],
        failed=stats["failures"],
        errors=0,
        skipped=stats["pending"] if include_pending else 0,
        xfailed=0,
        xpassed=0,
    )
    hooks = 1
    assert sum(totals.values()) == stats["tests"] + hooks - (0 if include_pending else stats["pending"])
    # mocha-junit-reporter's classname is the test's title and name its full title.
    assert "sums prices::cart sums prices" in {r.nodeid for r in results}
    assert all(r.file.endswith("mocha/cart.spec.js") for r in results)
