"""`manage.py generate_history --cycles N --tests N [--session SLUG] [--flaky-rate 0.02] [--seed 1] [--reset]`.

Builds a realistic loop history through the real ingest path (see ``sessions/demo/history.py``):
500 cycles of 2,000 tests store about 1,000,000 results. Progress goes to stderr. A session that
already exists is left alone: the same history again is reported as done (exit 0), a different one is
refused; ``--reset`` deletes it first.
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.demo import history
from sessions.demo.history_suite import HistorySpec
from sessions.management.commands.ingest import environment_name


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Command(BaseCommand):
    help = "Generate a realistic loop history (runs, signatures, deployments, analyses, fixes) through ingest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cycles", type=int, required=True)
        parser.add_argument("--tests", type=int, required=True, help="Tests in the suite (results per full run).")
        parser.add_argument("--session", default="history", help="Session slug (default: history).")
        parser.add_argument(
            "--environment",
            default="staging",
            type=environment_name,
            help="Environment name, a slug (default: staging).",
        )
        parser.add_argument("--flaky-rate", type=float, default=0.02, help="Share of flaky tests (default 0.02).")
        parser.add_argument(
            "--rerun-rate",
            type=float,
            default=0.35,
            help="Share of cycles with failures whose failures are rerun (default 0.35).",
        )
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--title", default="")
        parser.add_argument("--reset", action="store_true", help="Delete the session (and what only it held) first.")

    def handle(self, *args, **options) -> None:
        if options["cycles"] < 1 or options["tests"] < 1:
            raise CommandError("--cycles and --tests must be 1 or more")
        if not 0 <= options["flaky_rate"] <= 1 or not 0 <= options["rerun_rate"] <= 1:
            raise CommandError("--flaky-rate and --rerun-rate must be between 0 and 1")
        spec = HistorySpec(
            slug=options["session"],
            cycles=options["cycles"],
            tests=options["tests"],
            flaky_rate=options["flaky_rate"],
            seed=options["seed"],
            environment=options["environment"],
            rerun_rate=options["rerun_rate"],
            title=options["title"],
        )
        found = history.existing(spec.slug)
        if found is not None:
            if options["reset"]:
                started = time.perf_counter()
                runs = history.reset(spec.slug)
                self.stderr.write(
                    f"reset: deleted session '{spec.slug}' ({runs} runs) in {time.perf_counter() - started:.1f} s"
                )
            elif history.describe(spec) in found.mission and found.cycle_count == spec.cycles:
                self.stdout.write(
                    f"session '{spec.slug}' already holds this history ({found.cycle_count} cycles); nothing to do"
                )
                return
            else:
                raise CommandError(
                    f"session '{spec.slug}' already exists ({found.runs.count()} runs, {found.cycle_count} cycles); "
                    "use --reset to delete it and generate again, or choose another --session"
                )
        tty = sys.stderr.isatty()
        last = [0.0]

        def progress(p: history.Progress) -> None:
            now = time.perf_counter()
            if p.cycle != p.cycles and now - last[0] < (0.2 if tty else 5.0):
                return
            last[0] = now
            line = (
                f"cycle {p.cycle}/{p.cycles} · {p.runs} runs · {p.results:,} results · "
                f"{p.rate:,.0f} results/s · elapsed {_clock(p.elapsed_s)} · ETA {_clock(p.eta_s)}"
            )
            if tty:
                self.stderr.write("\r" + line.ljust(100), ending="")
                if p.cycle == p.cycles:
                    self.stderr.write("")
            else:
                self.stderr.write(line)

        result = history.generate(spec, progress)
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(result.fix_statuses.items())) or "none"
        self.stdout.write(
            f"session '{spec.slug}': {spec.cycles} cycles, {result.runs} runs, {result.results:,} results, "
            f"{result.deployments} deployments, {result.analyses} analyses, {result.fixes} fixes ({statuses}) "
            f"in {result.seconds:.1f} s ({result.results / max(result.seconds, 1e-9):,.0f} results/s; "
            f"ingest_file {result.ingest_seconds:.1f} s)"
        )
