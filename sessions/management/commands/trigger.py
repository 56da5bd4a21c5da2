"""`manage.py trigger {deploy,tests,cycle} --session SLUG [--revision REV] [--rollback] [--rerun RUN_ID --scope all|failed]
[--marker EXPR] [--keyword EXPR] [--p1] [--signature ID] [--tests CASE_ID...] [--shards N] [--wait]`.

Queues the work on the workers and prints ``deployment <id>`` and/or ``run <id>``. With ``--wait`` it
polls the rows until they end, prints ``deployment <id> <status>`` / ``run <id> <status>``, and exits
non-zero unless every one of them succeeded (deployment) or finished (run).
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.models import LIVE_STATUSES, Deployment, TestRun, WorkStatus
from sessions.services.triggers import TriggerError, trigger_from_request


class Command(BaseCommand):
    help = "Queue a deploy, a test run or a whole cycle (deploy, then tests) on the workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["deploy", "tests", "cycle"])
        parser.add_argument("--session", required=True, help="Session slug.")
        parser.add_argument(
            "--revision",
            help="Revision to deploy (default: the environment's newest; with a repository, "
            "its default branch's head); with tests, the git ref whose suite runs, without deploying.",
        )
        parser.add_argument(
            "--rollback", action="store_true", help="Allow deploying a revision older than the one deployed now."
        )
        parser.add_argument("--rerun", type=int, metavar="RUN_ID", help="Rerun the tests of this run.")
        parser.add_argument("--scope", choices=["all", "failed", "selected"], help="With --rerun (default all).")
        parser.add_argument(
            "--tests",
            type=int,
            nargs="+",
            metavar="CASE_ID",
            help="With --rerun --scope selected: tests of that run; without --rerun: tests chosen by hand.",
        )
        parser.add_argument("--p1", action="store_true", help="tests: run the environment's P1 tests.")
        parser.add_argument(
            "--signature", type=int, metavar="ID", help="tests: run the tests this signature hit in its latest run."
        )
        parser.add_argument(
            "--marker", metavar="EXPR", help="tests: run the tests a marker expression selects (e.g. p1)."
        )
        parser.add_argument("--keyword", metavar="EXPR", help="tests: run the tests a keyword expression selects.")
        parser.add_argument(
            "--shards", type=int, metavar="N", help="tests, cycle: split the run over N workers (1 to 32)."
        )
        parser.add_argument("--wait", action="store_true", help="Wait for the end and print the final status.")
        parser.add_argument("--timeout", type=float, default=None, help="With --wait: give up after SECONDS.")
        parser.add_argument("--poll", type=float, default=1.0, help="With --wait: seconds between polls.")

    def handle(self, *args: object, **options: object) -> None:
        payload: dict[str, object] = {"action": options["action"]}
        for key in ("revision", "rerun", "scope", "tests", "marker", "keyword", "shards", "signature"):
            if options[key] is not None:
                payload[key] = options[key]
        if options["rollback"]:
            payload["rollback"] = True
        if options["p1"]:
            payload["p1"] = True
        try:
            created = trigger_from_request(options["session"], payload, None, source=TestRun.Source.CLI)
        except TriggerError as exc:
            raise CommandError(str(exc)) from None
        if "deployment" in created:
            self.stdout.write(f"deployment {created['deployment']}")
        if "run" in created:
            self.stdout.write(f"run {created['run']}")
        if not options["wait"]:
            return
        self.stdout.flush()
        ok = self.wait(created, options["timeout"], max(0.1, options["poll"]))
        if not ok:
            raise CommandError("the work did not succeed", returncode=1)

    def wait(self, created: dict[str, int], timeout: float | None, poll: float) -> bool:
        """Poll the rows (a cycle: the deployment, then its run) and print each final status once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = [("deployment", Deployment, created["deployment"])] if "deployment" in created else []
        if "run" in created:
            pending.append(("run", TestRun, created["run"]))
        ok = True
        for name, model, pk in pending:
            while True:
                row = model.objects.filter(pk=pk).first()
                ended = row is None or (row.status not in LIVE_STATUSES and getattr(row, "summary_written", True))
                if ended:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    self.stdout.write(f"{name} {pk} {row.status} (still live after {timeout:g} s)")
                    return False
                time.sleep(poll)
            status = "deleted" if row is None else row.status
            self.stdout.write(f"{name} {pk} {status}")
            self.stdout.flush()
            ok = ok and status in (WorkStatus.SUCCEEDED, WorkStatus.FINISHED)
        return ok
