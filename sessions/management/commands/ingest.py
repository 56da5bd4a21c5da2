"""`manage.py ingest FILE... --session SLUG [--cycle N] [--environment NAME]`."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.ingest.records import IngestError
from sessions.selectors import run_url
from sessions.services.ingestion import ingest_file


class Command(BaseCommand):
    help = "Ingest JUnit XML or pytest report-log files (optionally .gz), one run per file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--session", required=True, help="Session slug; created when it does not exist.")
        parser.add_argument("--cycle", type=int, help="Cycle number (default: the session's latest, else 1).")
        parser.add_argument("--environment", help="Environment name for a new session (default: 'default').")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        if options["cycle"] is not None and options["cycle"] < 1:
            raise CommandError("--cycle must be 1 or more")
        failed = 0
        for path in options["files"]:
            try:
                with path.open("rb") as fileobj:
                    outcome = ingest_file(
                        fileobj,
                        str(path),
                        session_slug=options["session"],
                        cycle_number=options["cycle"],
                        environment_name=options["environment"],
                    )
            except FileNotFoundError:
                self.stderr.write(f"error: {path}: no such file")
                failed += 1
                continue
            except IsADirectoryError:
                self.stderr.write(f"error: {path}: is a directory")
                failed += 1
                continue
            except IngestError as exc:
                self.stderr.write(f"error: {exc}")
                failed += 1
                continue
            run = outcome.run
            note = "" if outcome.created else " (already ingested)"
            self.stdout.write(f"run {run.pk} {run_url(run)}{note}")
        if failed:
            # One line per refused file was written above; exit non-zero without a second message.
            sys.exit(1)
