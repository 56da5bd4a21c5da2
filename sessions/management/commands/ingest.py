"""`manage.py ingest FILE... --session SLUG [--cycle N] [--environment NAME]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.ingest.records import IngestError
from sessions.selectors.api_json import run_url
from sessions.services.ingestion.upload import UploadRefused, check_environment_name, ingest_file


def environment_name(value: str) -> str:
    """argparse type: the name must be a slug before anything is read or stored."""
    try:
        return check_environment_name(value)
    except UploadRefused as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Ingest result files, one run per file: JUnit XML, pytest report-log, TRX (.trx), NUnit 3 or "
        "xUnit.net v2 XML, go test -json (.json/.jsonl); any of them gzipped. The format is read from the content."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--session", required=True, help="Session slug; created when it does not exist.")
        parser.add_argument("--cycle", type=int, help="Cycle number (default: the session's latest, else 1).")
        parser.add_argument(
            "--environment",
            type=environment_name,
            help="Environment of a new session (a slug). An unknown one is created without commands; an admin "
            "sets them. Default: a new environment named after the session, without commands. For an "
            "existing session it must be the session's own environment.",
        )

    def handle(self, *args, **options) -> None:
        if options["cycle"] is not None and options["cycle"] < 1:
            raise CommandError("--cycle must be 1 or more")
        failed = 0
        for path in options["files"]:
            try:
                with path.open("rb") as fileobj:
                    # Someone with a shell on the server is trusted to name a new environment (created
                    # without commands); the API never creates one (docs/INGESTION.md).
                    outcome = ingest_file(
                        fileobj,
                        str(path),
                        session_slug=options["session"],
                        cycle_number=options["cycle"],
                        environment_name=options["environment"],
                        create_environment=True,
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
            except UploadRefused as exc:
                # The same for every file: stop before anything else is read.
                raise CommandError(f"--{exc.field}: {exc}") from None
            if outcome.environment_created is not None:
                self.stderr.write(
                    f"note: created environment {outcome.environment_created.name!r} without commands "
                    "(an admin sets them in /admin/)"
                )
            run = outcome.run
            note = "" if outcome.created else " (already ingested)"
            self.stdout.write(f"run {run.pk} {run_url(run)}{note}")
        if failed:
            # One line per refused file was written above; exit non-zero without a second message.
            sys.exit(1)
