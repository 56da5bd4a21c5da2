#!/usr/bin/env python
"""Parse every result file under a folder, one by one, as ``manage.py ingest`` would, and check the
evidence rules (docs/COUNTING.md, "Reruns and other evidence").

    .venv/bin/python scripts/check_result_files.py DIR [DIR...]

For each file: its format and counts, or the refusal. Exit status 1 when a stored duration would be
over a day, when a test case with a Surefire ``<flakyFailure>``/``<flakyError>`` and no failure is not
flaky in its run, or when a ``status="disabled"`` test case is not skipped. Parsing only: nothing is
stored, no database is needed.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions.ingest import IngestError, parse
from sessions.ingest.records import MAX_RUN_SECONDS, MAX_TEST_SECONDS

_FLAKY_CASE = re.compile(
    rb"<testcase\b(?:(?!</testcase>).)*?<flaky(?:Failure|Error)\b(?:(?!</testcase>).)*?</testcase>", re.S
)
_DISABLED = re.compile(rb"<testcase\b[^>]*\bstatus=[\"']disabled[\"']", re.I)


def check(path: Path, root: Path) -> list[str]:
    """Problems found in one file (none for a refused file: a refusal is an answer, shown, not a problem)."""
    name = str(path.relative_to(root))
    raw = path.read_bytes()
    try:
        with path.open("rb") as handle:
            parsed = parse(handle, name)
            results = list(parsed.results)
    except IngestError as exc:
        print(f"refused  {exc}")
        return []
    counts = Counter(r.outcome.value for r in results)
    flaky = sum(1 for r in results if r.flaky)
    print(f"{parsed.info.format:9} {name}: {len(results)} tests {dict(counts)} flaky={flaky}")
    problems = []
    long = [r.nodeid for r in results if r.duration is not None and r.duration > MAX_TEST_SECONDS]
    if long:
        problems.append(f"{name}: durations over a day: {long[:3]}")
    if parsed.info.duration is not None and parsed.info.duration > MAX_RUN_SECONDS:
        problems.append(f"{name}: a run of {parsed.info.duration:.0f} s")
    expected_flaky = sum(
        1 for m in _FLAKY_CASE.finditer(raw) if b"<failure" not in m.group() and b"<error" not in m.group()
    )
    if flaky < expected_flaky:
        problems.append(f"{name}: {expected_flaky} flaky reruns in the file, {flaky} flaky results")
    disabled = len(_DISABLED.findall(raw))
    if counts["skipped"] < disabled:
        problems.append(f"{name}: {disabled} disabled test cases, {counts['skipped']} skipped")
    return problems


def main(folders: list[str]) -> int:
    problems: list[str] = []
    for folder in folders:
        root = Path(folder)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".md"):
            problems += check(path, root)
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
