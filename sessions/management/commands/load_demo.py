"""`manage.py load_demo [--reset]`: load the demo session 'demo' into any database, idempotently."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from sessions.demo import loader


class Command(BaseCommand):
    help = "Load the demo session 'demo' (real pytest results of examples/staging) and the demo users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="Delete the demo session and load it again.")

    def handle(self, *args, **options) -> None:
        loader.load(self.stdout.write, reset=options["reset"])
