"""Benchmark: instructions the client spends per upload, counted by valgrind, beside another checkout.

Seconds are a poor judge of a 3 % change on a shared two-core virtual machine: the same parse took
1.0 to 1.9 CPU seconds from one minute to the next here. Instructions do not move with the load:
``valgrind --tool=callgrind`` counts them the same (to a few tenths of a percent) whatever else the
machine is doing. They do not see the memory cache (a change that only makes the data fit the cache
shows in seconds, not here), so use this to judge code changes and ``bench/ingest.py`` for the time.

Run: ``.venv/bin/python bench/instructions.py [--cases 20000] [--before TREE]``. Needs valgrind and, for
the ``upload`` measurement, PostgreSQL (``BENCH_DATABASE_URL``, default the ingest benchmark's database,
migrated by ``bench/ingest.py``). Each measurement is one Python process under callgrind (about 30x
slower than without); the cost of starting Python, Django and a 10-case file is measured the same way
and subtracted, so the figures are the instructions of the cases themselves.

What it measures, for a JUnit file and a report-log file of the same tests (``bench/ingest.py``'s):

- ``parse``: ``sessions.ingest.parse`` alone, every result read, nothing stored;
- ``upload``: ``ingest_file`` into a new environment (parsing, storage, the run's end), client side only:
  PostgreSQL's own work is not counted.

Not a test: it prints millions of instructions (and per case) for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEFAULT_DB = "postgres://root@127.0.0.1:5432/loopdash_bench"
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")

_PARSE = """
import sys
sys.path.insert(0, sys.argv[1])
from sessions.ingest import parse
with open(sys.argv[2], "rb") as f:
    for _ in parse(f, sys.argv[2]).results:
        pass
"""

_UPLOAD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
os.environ["DATABASE_URL"] = sys.argv[3]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopdash.settings")
import django
django.setup()
from sessions.services.ingestion.upload import ingest_file
slug = f"instructions-{time.time_ns()}"
with open(sys.argv[2], "rb") as f:
    ingest_file(f, sys.argv[2], session_slug=slug, environment_name=slug, create_environment=True)
"""


def instructions(tree: Path, program: str, path: Path, dsn: str) -> int:
    """Instructions of one process (Python, the program, the file) under callgrind."""
    env = os.environ | {"PYTHONHASHSEED": "0"}  # the same dict layouts every time
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", program]
        + [str(tree), str(path), dsn],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        check=False,
    )
    found = COLLECTED.search(out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"callgrind on {path} in {tree} failed:\n{out.stderr[-3000:]}")
    return int(found.group(1))


def files(cases: int) -> dict[str, tuple[Path, Path]]:
    """(the file of ``cases`` tests, a 10-test file of the same kind) for JUnit and report-log."""
    sys.path.insert(0, str(ROOT / "bench"))
    from ingest import write_junit, write_reportlog  # the ingest benchmark's files, same generator

    OUT.mkdir(parents=True, exist_ok=True)
    made = {}
    for kind, write, suffix in (("junit", write_junit, "xml"), ("reportlog", write_reportlog, "jsonl")):
        pair = []
        for n in (cases, 10):
            path = OUT / f"instructions-{kind}-{n}.{suffix}"
            if not path.exists():
                write(path, n)
            pair.append(path)
        made[kind] = (pair[0], pair[1])
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20_000, help="tests per file (default %(default)s)")
    parser.add_argument("--before", type=Path, help="another checkout to count beside this one")
    parser.add_argument("--dsn", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--parse-only", action="store_true", help="skip the uploads (no database needed)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    trees = {"after": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    programs = {"parse": _PARSE} | ({} if args.parse_only else {"upload": _UPLOAD})
    rows = []
    started = time.monotonic()
    for kind, (path, small) in files(args.cases).items():
        for step, program in programs.items():
            row = {"file": kind, "step": step, "cases": args.cases}
            for name, tree in trees.items():
                total = instructions(tree, program, path, args.dsn) - instructions(tree, program, small, args.dsn)
                row[name] = total
                print(
                    f"{kind:9} {step:6} {name:6} {total / 1e6:9.0f} M instructions, "
                    f"{total / args.cases / 1e3:6.1f} k per case",
                    flush=True,
                )
            if "before" in row:
                row["change"] = (row["after"] - row["before"]) / row["before"]
                print(f"{kind:9} {step:6} change {row['change'] * 100:+.1f} %", flush=True)
            rows.append(row)
    (OUT / "instructions.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"figures written to {OUT / 'instructions.json'} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
