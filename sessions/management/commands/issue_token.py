"""`manage.py issue_token USERNAME`: print a new API token (stored hashed, shown once)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.services.tokens import issue_token


class Command(BaseCommand):
    help = "Create an API token for a user and print it. Only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the token, e.g. 'github-actions'.")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r}")
        if not user.is_active:
            raise CommandError(f"user {options['username']!r} is inactive")
        self.stdout.write(issue_token(user, options["name"]))
