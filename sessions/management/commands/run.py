"""`manage.py run exclude ID --reason TEXT` / `manage.py run include ID [--reason TEXT]` [--user USERNAME].

Sets a run aside (it stops counting in the trend, the headline, MRR at risk, the criteria, flakiness and
fix verdicts, at once) or takes it back in, through ``services.counting`` as the run page's buttons and
the API do, and prints what changed. ``--user`` records who did it (the session's activity and the run
page show the name); without it the change is recorded with no person. An unknown run or user, a missing
reason, a run still queued or running, or including a run that is not excluded: an error on stderr and
exit status 1, nothing changed.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.models import LIVE_STATUSES, TestRun
from sessions.services import counting
from sessions.services.triage import Invalid


class Command(BaseCommand):
    help = "Exclude a run from every figure (with a reason), or include it again."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{exclude,include}")
        exclude = actions.add_parser("exclude", help="Set a run aside: it stops counting everywhere.")
        include = actions.add_parser("include", help="Take an excluded run back in.")
        for sub, reason_help in (
            (exclude, "Why the run should not count (required; shown on the run and in the session)."),
            (include, "Why it counts after all (optional)."),
        ):
            sub.add_argument("id", metavar="ID", help="The run's id.")
            sub.add_argument("--reason", default="", help=reason_help)
            sub.add_argument("--user", metavar="USERNAME", help="Record this user as having done it.")

    def handle(self, *args: object, **options: object) -> None:
        run = self._run(str(options["id"]))
        user = self._user(options.get("user"))
        action = options["action"]
        if run.status in LIVE_STATUSES or not run.summary_written:
            raise CommandError(f"run {run.pk} has not ended yet ({run.status}): {action} it once it has")
        was_counted = run.counted
        try:
            if action == "exclude":
                counting.exclude_run(run, options["reason"], user)
            else:
                counting.include_run(run, user, options["reason"])
        except Invalid as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self._describe(run, was_counted))

    def _run(self, value: str) -> TestRun:
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise CommandError(f"ID must be a run's id (a whole number), got {value!r}")
        run = TestRun.objects.select_related("session", "environment").filter(pk=int(value)).first()
        if run is None:
            raise CommandError(f"no run {value}")
        return run

    def _user(self, username: object) -> AbstractBaseUser | None:
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"--user: no user {username!r}")
        return user

    def _describe(self, run: TestRun, was_counted: bool) -> str:
        """One line: what the run is now, and whether that changed the figures."""
        if run.excluded:
            change = "it no longer counts" if was_counted else "it did not count before either"
            return f"run {run.pk} excluded ({change}): {run.excluded_reason}"
        if run.counted:
            return f"run {run.pk} included: it counts again"
        why = f"incomplete ({run.status})" if run.incomplete else run.status
        return f"run {run.pk} included, but it still does not count: it is {why}"
