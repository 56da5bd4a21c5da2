"""The in-app set-up forms, taken apart: an environment's settings as lists and rows, a new session.

An environment's argument lists are edited one argument per line (a line is one argument, spaces and
quotes included, so there is nothing to quote and no shell), its revisions and metric targets as rows,
its variables as ``NAME=value`` lines. ``environment_document`` turns the posted form into the same
document ``manage.py environment apply`` reads; ``services.environments`` then checks it, so the form,
the file and the API refuse the same things in the same words. Settings this form has no widget for
(added to the model later) are shown by their column type: a checkbox, a number, a line, or JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.http import QueryDict

from .models import Environment
from .services import environments
from .services.environments import Problem

LIST_KEYS = ("deploy_command", "test_command", "health_check", "marker_args", "keyword_args")
EXTRA_ROWS = 3  # blank rows under the revisions and metric targets: more appear after each save


def lines_of(text: str) -> list[str]:
    """One argument per line; lines that are empty are dropped (an empty argument cannot be typed)."""
    return [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]


def _number(text: str) -> object:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # the spec says what it should be, naming the key


@dataclass
class EnvironmentForm:
    """What the page shows: each setting's value as the form edits it, and problems by field."""

    values: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    creating: bool = True

    def errors_for(self, key: str) -> list[str]:
        return [
            p.message if p.key == key else f"{p.key}: {p.message}" for p in self.problems if _field_of(p.key) == key
        ]

    @property
    def rows(self) -> list[dict]:
        """Each setting with how to edit it, in the model's order (the template walks this)."""
        out = []
        for column in environments.setting_fields():
            key = column.name
            out.append(
                {
                    "key": key,
                    "label": column.verbose_name.capitalize() if key not in LABELS else LABELS[key],
                    "help": HELP.get(key, column.help_text),
                    "widget": widget_of(column),
                    "value": self.values.get(key),
                    "text": (text := as_text(widget_of(column), self.values.get(key))),
                    "lines": max(3, min(12, text.count("\n") + 2)),
                    "errors": self.errors_for(key),
                }
            )
        return out


LABELS = {
    "deploy_command": "Deploy command",
    "test_command": "Test command",
    "health_check": "Health check",
    "marker_args": "Marker subset arguments",
    "keyword_args": "Keyword subset arguments",
    "env_vars": "Environment variables",
    "timeout_s": "Test timeout (s)",
    "deploy_timeout_s": "Deploy timeout (s)",
    "health_check_timeout_s": "Health check timeout (s)",
    "unreachable_share": "Unreachable share (%)",
    "working_dir": "Working directory",
}
HELP = {
    "deploy_command": "One argument per line. Placeholders: {python}, {revision}. Never a shell.",
    "test_command": "One argument per line. Placeholders: {python}, {revision}.",
    "health_check": "One argument per line, run before the tests; a non-zero exit ends the run, excluded "
    "(target unreachable). Empty: no check.",
    "marker_args": "One argument per line; {marker} in exactly one of them. Empty: no marker subsets.",
    "keyword_args": "One argument per line; {keyword} in exactly one of them. Empty: no keyword subsets.",
    "env_vars": "One NAME=value per line, for both commands.",
    "revisions": "Oldest first; the newest is the default for deploys and cycles.",
}


def widget_of(column: models.Field) -> str:
    key = column.name
    if key in LIST_KEYS:
        return "lines"
    if key in ("revisions", "metric_targets", "env_vars"):
        return key
    if isinstance(column, models.BooleanField):
        return "checkbox"
    if isinstance(column, models.IntegerField | models.FloatField):
        return "number"
    if isinstance(column, models.TextField):
        return "text"
    if isinstance(column, models.JSONField):
        return "json"
    return "line"


def as_text(widget: str, value: object) -> str:
    """A setting as its text box shows it: one argument or ``NAME=value`` per line, or JSON."""
    if widget == "lines" and isinstance(value, list):
        return "\n".join(str(item) for item in value)
    if widget == "env_vars" and isinstance(value, dict):
        return "\n".join(f"{name}={item}" for name, item in value.items())
    if widget == "json":
        return json.dumps(value, ensure_ascii=False)
    return ""


def _field_of(key: str) -> str:
    """The form field a problem's key points into: ``revisions[2].commit`` -> ``revisions``."""
    for stop in ("[", "."):
        key = key.split(stop, 1)[0]
    return key


def form_for(env: Environment | None) -> EnvironmentForm:
    """The form showing an environment's settings (or a new one's defaults), with blank rows to add to."""
    values = environments.export(env) if env is not None else environments.defaults()
    if env is None:
        values["name"] = ""
    return EnvironmentForm(values=_padded(values), creating=env is None)


def _padded(values: dict[str, Any]) -> dict[str, Any]:
    values = dict(values)
    revisions = [r for r in values.get("revisions") or [] if isinstance(r, dict)]
    values["revisions"] = revisions + [{"revision": "", "commit": "", "message": ""}] * EXTRA_ROWS
    targets = values.get("metric_targets") if isinstance(values.get("metric_targets"), dict) else {}
    values["metric_targets"] = [
        {
            "name": name,
            "target": t.get("target", "") if isinstance(t, dict) else "",
            "lower": bool(isinstance(t, dict) and t.get("lower_is_better")),
        }
        for name, t in targets.items()
    ] + [{"name": "", "target": "", "lower": False}] * EXTRA_ROWS
    return values


def environment_document(post: QueryDict, *, name: str | None) -> tuple[dict[str, Any], list[Problem]]:
    """The posted form as an environment document, and the problems only the form can see (a bad line)."""
    document: dict[str, Any] = {}
    problems: list[Problem] = []
    for column in environments.setting_fields():
        key = column.name
        widget = widget_of(column)
        raw = post.get(key, "")
        if key == "name":
            document[key] = name if name is not None else raw.strip()
        elif widget == "lines":
            document[key] = lines_of(raw)
        elif widget == "checkbox":
            document[key] = post.get(key) in ("1", "on", "true")
        elif widget == "number":
            document[key] = _number(raw) if raw.strip() else column.get_default()
        elif widget == "env_vars":
            document[key] = _env_vars(raw, problems)
        elif widget == "revisions":
            document[key] = _revisions(post)
        elif widget == "metric_targets":
            document[key] = _metric_targets(post, problems)
        elif widget == "json":
            document[key] = _json(key, raw, column, problems)
        else:
            document[key] = raw
    return document, problems


def _env_vars(text: str, problems: list[Problem]) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(lines_of(text), start=1):
        name, sep, value = line.partition("=")
        if not sep:
            problems.append(Problem("env_vars", f"line {number} ({line[:40]!r}) is not NAME=value"))
        else:
            out[name.strip()] = value
    return out


def _revisions(post: QueryDict) -> list[dict[str, str]]:
    rows = zip(
        post.getlist("revision"), post.getlist("revision_commit"), post.getlist("revision_message"), strict=False
    )
    return [
        {"revision": revision.strip(), "commit": commit.strip(), "message": message}
        for revision, commit, message in rows
        if revision.strip() or commit.strip() or message.strip()
    ]


def _metric_targets(post: QueryDict, problems: list[Problem]) -> dict[str, dict]:
    names, targets = post.getlist("metric_name"), post.getlist("metric_target")
    lower = set(post.getlist("metric_lower"))  # the checkbox's value is its row's index
    out: dict[str, dict] = {}
    for index, (name, target) in enumerate(zip(names, targets, strict=False)):
        if not name.strip() and not target.strip():
            continue
        if not name.strip():
            problems.append(Problem(f"metric_targets[{index}]", "a target needs the metric's name"))
            continue
        out[name.strip()] = {"target": _number(target), "lower_is_better": str(index) in lower}
    return out


def _json(key: str, text: str, column: models.Field, problems: list[Problem]) -> object:
    if not text.strip():
        return column.get_default()
    try:
        return json.loads(text)
    except ValueError as exc:
        problems.append(Problem(key, f"is not JSON: {exc}"))
        return column.get_default()


def check_environment(post: QueryDict, *, name: str | None) -> tuple[dict[str, Any] | None, EnvironmentForm]:
    """The valid document a form posted (None if it is not) and the form to show again, problems named."""
    document, problems = environment_document(post, name=name)
    try:
        data = environments.validate(document, name=name)
    except environments.SpecInvalid as exc:
        problems = problems + exc.problems
        data = None
    form = EnvironmentForm(values=_padded(document), problems=problems, creating=name is None)
    return (data if not problems else None), form
