"""`manage.py issue_token USERNAME [--expires YYYY-MM-DD | --days N] [--scope read,upload,trigger]`.

Prints a new API token (stored hashed, shown once). A token for CI that only
uploads results should say so: `--scope upload --days 90`.
"""

from __future__ import annotations

from datetime import date

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from sessions.services.tokens import SCOPES, describe_expiry, expiry_from_date, expiry_in_days, issue_token, parse_scope


class Command(BaseCommand):
    help = "Create an API token for a user and print it. Only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the token, e.g. 'github-actions'.")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--expires", metavar="YYYY-MM-DD", help="Refuse the token from this day on (TIME_ZONE).")
        when.add_argument("--days", type=int, metavar="N", help="Refuse the token N days from now.")
        parser.add_argument(
            "--scope",
            default=",".join(SCOPES),
            help=f"What the token may do, comma-separated: {', '.join(SCOPES)} (default: all three).",
        )

    def handle(self, *args: object, **options: object) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r}")
        if not user.is_active:
            raise CommandError(f"user {options['username']!r} is inactive")
        try:
            scopes = parse_scope(options["scope"])
        except ValueError as exc:
            raise CommandError(f"--scope: {exc}") from None
        expires_at = None
        if options["expires"] is not None:
            try:
                day = date.fromisoformat(options["expires"])
            except ValueError:
                raise CommandError(f"--expires: {options['expires']!r} is not a date (YYYY-MM-DD)") from None
            expires_at = expiry_from_date(day)
            if expires_at <= timezone.now():
                raise CommandError(f"--expires: {day.isoformat()} is not in the future")
        elif options["days"] is not None:
            if options["days"] < 1:
                raise CommandError(f"--days: must be 1 or more, got {options['days']}")
            expires_at = expiry_in_days(options["days"])
        self.stdout.write(issue_token(user, options["name"], scopes=scopes, expires_at=expires_at))
        until = f"until {describe_expiry(expires_at)}" if expires_at else "with no expiry"
        self.stderr.write(f"scope: {', '.join(scopes)}; valid {until}")
