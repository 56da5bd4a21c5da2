"""`manage.py prune [--dry-run] [--batch N]`: drop the bulky text of results, and old logs, outside the retention window.

The same work as the hourly beat task (``sessions.tasks.prune_detail``), on demand. ``--dry-run`` prints
what would be dropped (runs, results with text, an estimate of the bytes) and writes nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.services import retention


class Command(BaseCommand):
    help = "Drop messages, tracebacks, output and logs of runs and deployments older than the retention window."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print what would be dropped; change nothing.")
        parser.add_argument(
            "--batch", type=int, default=retention.BATCH, help="Results per transaction (default %(default)s)."
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        report = retention.prune(dry_run=bool(options["dry_run"]), batch=int(options["batch"]))
        self.stdout.write(report.describe(dry_run=bool(options["dry_run"])))
