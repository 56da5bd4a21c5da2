"""`manage.py environment apply FILE` / `manage.py environment export NAME`: environments as code.

``apply`` reads a JSON document (``-`` for standard input), creates or updates the environment it names
and prints what changed, one line per setting; ``export`` prints the environment in the same form, so
that export then apply changes nothing. A bad document exits with status 1 and one line on stderr
naming the key and the problem; nothing changes. The rules are ``services.environments``'s, the same
as the API's (``PUT /api/v1/environments/<name>``) and the in-app form's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.models import Environment
from sessions.services import environments

MAX_BYTES = 1024 * 1024  # an environment is a few kilobytes; a bigger file is a mistake


def read_document(name: str) -> object:
    """The JSON document in file ``name`` (``-``: standard input), or a CommandError saying why not."""
    try:
        raw = sys.stdin.buffer.read(MAX_BYTES + 1) if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise CommandError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise CommandError(f"{name}: larger than {MAX_BYTES // 1024} KB; an environment is a small JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CommandError(f"{name}: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CommandError(f"{name}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def shown(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


class Command(BaseCommand):
    help = "Environments as code: apply a JSON file (create or update), or export one as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{apply,export}")
        apply = actions.add_parser("apply", help="Create or update the environment a JSON file names.")
        apply.add_argument("file", metavar="FILE", help="The JSON file (- for standard input).")
        export = actions.add_parser("export", help="Print an environment as JSON that apply accepts.")
        export.add_argument("name", metavar="NAME", help="The environment's name.")

    def handle(self, *args: object, **options: object) -> None:
        if options["action"] == "export":
            env = Environment.objects.filter(name=options["name"]).first()
            if env is None:
                raise CommandError(f"no environment {options['name']!r}")
            self.stdout.write(json.dumps(environments.export(env), indent=2, ensure_ascii=False))
            return
        document = read_document(str(options["file"]))
        try:
            applied = environments.apply(document)
        except environments.SpecInvalid as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
        name = applied.environment.name
        if applied.created:
            self.stdout.write(f"created environment {name}")
        elif not applied.changes:
            self.stdout.write(f"environment {name}: unchanged")
            return
        else:
            self.stdout.write(f"updated environment {name}")
        for key, old, new in applied.changes:
            if applied.created:
                self.stdout.write(f"  {key}: {shown(new)}")
            else:
                self.stdout.write(f"  {key}: {shown(old)} -> {shown(new)}")
