"""`manage.py webhook add URL --secret S [--events E,...] [--format json|slack] [--session SLUG...]`,
`manage.py webhook list`, `manage.py webhook remove ID`.

Webhooks tell other systems what happened (docs/WEBHOOKS.md): workers POST each event, signed with the
secret. ``add`` refuses a URL that is not http(s), an unknown event or format, an unknown session, with
one line on stderr and exit status 1; ``list`` prints one line per webhook with its latest delivery;
``remove`` deletes a webhook and its deliveries. The admin does the same.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.models import WEBHOOK_EVENTS, LoopSession, Webhook
from sessions.services import webhooks


class Command(BaseCommand):
    help = "Add, list or remove webhooks (events POSTed by workers, signed with a secret)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{add,list,remove}")
        add = actions.add_parser("add", help="Add a webhook.")
        add.add_argument("url", metavar="URL", help="http:// or https:// URL that receives the POSTs.")
        add.add_argument("--secret", required=True, help="Signs every body (X-Loopdash-Signature).")
        add.add_argument("--events", default="", help=f"Comma-separated, default all: {','.join(WEBHOOK_EVENTS)}.")
        add.add_argument("--format", default="json", choices=Webhook.Format.values, help="json (default) or slack.")
        add.add_argument(
            "--session", action="append", default=[], metavar="SLUG", help="Only these sessions (repeatable)."
        )
        actions.add_parser("list", help="List webhooks and their latest delivery.")
        remove = actions.add_parser("remove", help="Remove a webhook and its deliveries.")
        remove.add_argument("id", metavar="ID", help="The webhook's id (from `webhook list`).")

    def handle(self, *args: object, **options: object) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _add(self, options: dict) -> None:
        slugs = list(dict.fromkeys(options["session"]))
        sessions = list(LoopSession.objects.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {s.slug for s in sessions})
        if missing:
            raise CommandError(f"--session: no session {missing[0]!r}")
        try:
            hook = webhooks.add_webhook(
                options["url"],
                options["secret"],
                events=options["events"],
                format=options["format"],
                sessions=sessions,
            )
        except webhooks.Invalid as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"webhook {hook.pk} {hook.url} {self._describe(hook)}")

    def _describe(self, hook: Webhook) -> str:
        events = ",".join(hook.events) or "all events"
        sessions = ",".join(s.slug for s in hook.sessions.all()) or "all sessions"
        state = "" if hook.active else " (inactive)"
        return f"format={hook.format} events={events} sessions={sessions}{state}"

    def _list(self, options: dict) -> None:
        hooks = Webhook.objects.prefetch_related("sessions").order_by("id")
        if not hooks:
            self.stdout.write("no webhooks")
        for hook in hooks:
            last = hook.deliveries.order_by("-created_at", "-id").first()
            latest = (
                f" last: {last.event} {last.status} after {last.attempts} attempt(s)"
                + (f" ({last.last_error})" if last.last_error else "")
                if last
                else " no deliveries yet"
            )
            self.stdout.write(f"webhook {hook.pk} {hook.url} {self._describe(hook)}{latest}")

    def _remove(self, options: dict) -> None:
        value = str(options["id"])
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise CommandError(f"ID must be a webhook's id (a whole number), got {value!r}")
        hook = Webhook.objects.filter(pk=int(value)).first()
        if hook is None:
            raise CommandError(f"no webhook {value}")
        hook.delete()
        self.stdout.write(f"webhook {value} removed")
