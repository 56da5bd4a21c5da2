#!/usr/bin/env python3
"""Produce real test-deploy-loop results for a list of revisions.

For each revision (one "cycle"): deploy it with deploy.py, run the full e2e
suite, run the P1 subset (``-m p1``), stop the service. Every run writes a
pytest ``--report-log`` (JSON lines) and a JUnit XML file made by real
pytest against the real service -- loopdash's demo loader imports these.

Usage::

    python examples/staging/make_results.py --out DIR [--revisions r1,r2,...]
        [--port 8765] [--state-dir DIR] [--workers N] [--no-p1] [--pytest-arg ARG ...]

Set STAGING_FLAKE_SEED to make the flaky test's outcomes reproducible.

Output layout (cycle numbers follow the order given, starting at 01)::

    DIR/manifest.json
    DIR/cycle-01-r1/deploy.txt            deploy.py output
    DIR/cycle-01-r1/full.reportlog.jsonl  pytest --report-log, full suite
    DIR/cycle-01-r1/full.junit.xml        pytest --junitxml, full suite
    DIR/cycle-01-r1/full.stdout.txt       pytest console output
    DIR/cycle-01-r1/p1.reportlog.jsonl    same for the P1 run (-m p1)
    DIR/cycle-01-r1/p1.junit.xml
    DIR/cycle-01-r1/p1.stdout.txt
    DIR/cycle-01-r1/service.log           the service's own log for the cycle
    DIR/cycle-02-r2/...

Exit code: 0 when every deploy succeeded (test failures are the point of the
exercise and do not fail this script), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

STAGING_DIR = Path(__file__).resolve().parent
DEPLOY = STAGING_DIR / "deploy.py"
REVISIONS_FILE = STAGING_DIR / "revisions.json"


def all_revisions() -> list[dict[str, Any]]:
    """Revision entries in catalogue order."""
    data = json.loads(REVISIONS_FILE.read_text(encoding="utf-8"))
    return list(data)


def summarize_reportlog(path: Path) -> dict[str, Any]:
    """Outcome counts from a report-log, computed the way pytest's summary does.

    A test's outcome is its call outcome, unless setup/teardown errored
    ("error") or setup skipped ("skipped").
    """
    outcomes: dict[str, str] = {}
    exitstatus = None
    if not path.exists():
        return {"missing": True}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        kind = entry.get("$report_type")
        if kind == "SessionFinish":
            exitstatus = entry.get("exitstatus")
        if kind != "TestReport":
            continue
        nodeid, when, outcome = entry["nodeid"], entry["when"], entry["outcome"]
        if when == "call":
            if "wasxfail" in entry:
                outcome = "xpassed" if outcome == "passed" else "xfailed"
            if outcomes.get(nodeid) != "error":
                outcomes[nodeid] = outcome
        elif outcome == "failed":
            outcomes[nodeid] = "error"  # setup/teardown failure
        elif when == "setup" and outcome == "skipped":
            outcomes[nodeid] = "skipped"
    counts = Counter(outcomes.values())
    return {"total": len(outcomes), **dict(sorted(counts.items())), "exitstatus": exitstatus}


def run_logged(cmd: list[str], out_file: Path, env: dict[str, str], cwd: Path) -> tuple[int, float]:
    """Run ``cmd`` with stdout+stderr captured to ``out_file``; return (exit code, seconds)."""
    started = time.monotonic()
    with open(out_file, "wb") as handle:
        code = subprocess.call(cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return code, round(time.monotonic() - started, 3)


def pytest_cmd(name: str, cycle_dir: Path, cycle: str, workers: int, marker: str | None, extra: list[str]) -> list[str]:
    """The pytest argument list for one run (cwd = examples/staging)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        "-q",
        f"--report-log={cycle_dir / f'{name}.reportlog.jsonl'}",
        f"--junitxml={cycle_dir / f'{name}.junit.xml'}",
        "-o",
        f"junit_suite_name=staging-{cycle}-{name}",
    ]
    if marker:
        cmd += ["-m", marker]
    if workers > 0:
        cmd += ["-n", str(workers)]
    return cmd + extra


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (created)")
    parser.add_argument("--revisions", default="", help="comma-separated, default: all in revisions.json order")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STAGING_PORT") or 8765))
    parser.add_argument("--state-dir", type=Path, default=None, help="passed to deploy.py")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (-n); 0 = serial")
    parser.add_argument("--no-p1", action="store_true", help="skip the separate P1 run")
    parser.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra pytest argument, repeatable (e.g. --pytest-arg=--tb=short for smaller files)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Deploy, test and stop each revision in turn."""
    args = parse_args(argv)
    known = {str(r["revision"]): r for r in all_revisions()}
    wanted = [r.strip() for r in args.revisions.split(",") if r.strip()] or list(known)
    unknown = [r for r in wanted if r not in known]
    if unknown:
        print(f"make_results: unknown revisions {unknown} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    url = f"ws://127.0.0.1:{args.port}"
    env = dict(os.environ, STAGING_URL=url, STAGING_PORT=str(args.port), PYTHONDONTWRITEBYTECODE="1")
    deploy_common = ["--port", str(args.port)]
    if args.state_dir is not None:
        deploy_common += ["--state-dir", str(args.state_dir.resolve())]
        env["STAGING_STATE_DIR"] = str(args.state_dir.resolve())
    state_dir = Path(env.get("STAGING_STATE_DIR") or STAGING_DIR / ".state").resolve()

    manifest: dict[str, Any] = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "staging_url": url,
        "python": sys.executable,
        "workers": args.workers,
        "cycles": [],
    }
    all_deployed = True
    for index, revision in enumerate(wanted, start=1):
        entry = known[revision]
        cycle = f"cycle-{index:02d}-{revision}"
        cycle_dir = out / cycle
        cycle_dir.mkdir(parents=True, exist_ok=True)
        print(f"== {cycle}: {entry['commit'][:10]} {entry['message']}", flush=True)
        record: dict[str, Any] = {
            "cycle": index,
            "name": cycle,
            "revision": revision,
            "commit": entry["commit"],
            "message": entry["message"],
            "started_at": time.time(),
            "runs": [],
        }
        deploy_cmd = [sys.executable, str(DEPLOY), "--revision", revision, *deploy_common]
        code, seconds = run_logged(deploy_cmd, cycle_dir / "deploy.txt", env, STAGING_DIR)
        record["deploy"] = {"argv": deploy_cmd, "exit_code": code, "seconds": seconds, "output": "deploy.txt"}
        print(f"   deploy exit {code} in {seconds:.1f}s", flush=True)
        try:
            if code != 0:
                all_deployed = False
                continue
            runs = [("full", None)] + ([] if args.no_p1 else [("p1", "p1")])
            for name, marker in runs:
                cmd = pytest_cmd(name, cycle_dir, cycle, args.workers, marker, args.pytest_arg)
                code, seconds = run_logged(cmd, cycle_dir / f"{name}.stdout.txt", env, STAGING_DIR)
                counts = summarize_reportlog(cycle_dir / f"{name}.reportlog.jsonl")
                record["runs"].append(
                    {
                        "name": name,
                        "argv": cmd,
                        "cwd": str(STAGING_DIR),
                        "exit_code": code,
                        "seconds": seconds,
                        "report_log": f"{name}.reportlog.jsonl",
                        "junit_xml": f"{name}.junit.xml",
                        "stdout": f"{name}.stdout.txt",
                        "counts": counts,
                    }
                )
                summary = ", ".join(f"{k}={v}" for k, v in counts.items() if k not in ("exitstatus",))
                print(f"   {name}: exit {code} in {seconds:.1f}s ({summary})", flush=True)
        finally:
            stop_cmd = [sys.executable, str(DEPLOY), "--stop", *deploy_common]
            stop_code, _ = run_logged(stop_cmd, cycle_dir / "stop.txt", env, STAGING_DIR)
            record["stop_exit_code"] = stop_code
            service_log = state_dir / f"service-{args.port}.log"
            if service_log.exists():
                shutil.copyfile(service_log, cycle_dir / "service.log")
            record["finished_at"] = time.time()
            manifest["cycles"].append(record)
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"results in {out}", flush=True)
    return 0 if all_deployed else 1


if __name__ == "__main__":
    sys.exit(main())
