"""Environments as code: the one place that says what a valid environment is, and applies one.

``manage.py environment apply|export``, ``PUT /api/v1/environments/<name>`` and the in-app form all go
through ``validate`` and ``apply``, so a file, a request and a form are refused for the same reasons,
in the same words, naming the same key (``test_command[2]``, ``revisions[1].revision``).

The document is declarative: it describes the whole environment. A key left out takes the setting's
default, so that export then apply changes nothing and a file kept in a repository is the full truth.
Keys are the environment's settings under their field names; settings added to the model later are
validated by their column type until they get a rule of their own here.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from ..models import Environment
from ..validation import INT_MAX, nul_in_json
from ..work import git
from ..work.runners import PLACEHOLDERS

# Keys named so that a file using a feature this version does not have gets a clear refusal (none now).
NOT_BUILT: dict[str, str] = {}
COMMAND_KEYS = ("deploy_command", "test_command", "health_check", "setup_command")
SUBSET_KEYS = {"marker_args": "{marker}", "keyword_args": "{keyword}"}
REVISION_KEYS = ("revision", "commit", "message")
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_SLUG = re.compile(r"[-a-zA-Z0-9_]+", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document: where (``key``) and what."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class SpecInvalid(ValueError):
    """A document that cannot be applied; ``problems`` lists every one found, the first is the headline."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(str(problems[0]))
        self.problems = problems


@dataclass(slots=True)
class Applied:
    """What ``apply`` did: created or updated, and each key whose value changed (old, new; old None if created)."""

    environment: Environment
    created: bool
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)


def setting_fields() -> list[models.Field]:
    """The environment's settings, in the model's order: every concrete, editable, non-relational field."""
    return [
        f
        for f in Environment._meta.concrete_fields
        if f.editable and not f.primary_key and not f.is_relation and not f.auto_created
    ]


def keys() -> list[str]:
    return [f.name for f in setting_fields()]


def export(env: Environment) -> dict[str, Any]:
    """The environment as a document ``apply`` accepts unchanged: every key, in the model's order."""
    return {f.name: getattr(env, f.name) for f in setting_fields()}


def defaults() -> dict[str, Any]:
    return {f.name: f.get_default() for f in setting_fields()}


# -- validation ---------------------------------------------------------------------------------------------


class _Checker:
    """Collects problems while checking one document."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def text(self, key: str, value: object, max_length: int | None) -> None:
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {_kind(value)}")
        elif max_length is not None and len(value) > max_length:
            self.fail(key, f"is {len(value)} characters long; at most {max_length}")

    def arguments(self, key: str, value: object, allowed: tuple[str, ...]) -> bool:
        """An argument list: a JSON list of strings, never a shell string; placeholders among ``allowed``."""
        if not isinstance(value, list):
            self.fail(key, f"must be a list of arguments (strings), never one shell string; got {_kind(value)}")
            return False
        good = True
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{index}]", f"every argument must be a string, got {_kind(item)}")
                good = False
                continue
            for holder in _PLACEHOLDER.findall(item):
                if holder not in allowed:
                    known = ", ".join(allowed) or "none"
                    self.fail(f"{key}[{index}]", f"unknown placeholder {holder} (known here: {known})")
                    good = False
        if good and value and not value[0].strip():
            self.fail(f"{key}[0]", "the program (first argument) is empty")
            good = False
        return good

    def repository(self, key: str, value: object) -> None:
        """A git URL or path (empty: no repository): one argument to git, never an option."""
        self.text(key, value, 500)
        if isinstance(value, str) and value.strip():
            try:
                git.check_repository(value)
            except git.GitError as exc:
                self.fail(key, str(exc))

    def relative_files(self, key: str, value: object) -> None:
        """Files inside the checkout (setup_cache_files): relative paths, never outside it."""
        if not isinstance(value, list):
            self.fail(key, f"must be a list of file paths relative to working_dir, got {_kind(value)}")
            return
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{key}[{index}]", f"must be a file path, got {_kind(item)}")
            elif item.startswith(("/", "\\")) or ".." in item.replace("\\", "/").split("/"):
                self.fail(f"{key}[{index}]", f"must stay inside the checkout (relative, no ..), got {item!r}")

    def subset(self, key: str, value: object, placeholder: str) -> None:
        if not self.arguments(key, value, (placeholder,)) or not value:
            return
        holders = [item for item in value if placeholder in item]
        if len(holders) != 1:
            self.fail(key, f"must hold {placeholder} in exactly one argument (or be empty: no such subsets)")

    def env_vars(self, key: str, value: object) -> None:
        if not isinstance(value, dict):
            self.fail(key, f"must be an object of NAME: value strings, got {_kind(value)}")
            return
        for name, item in value.items():
            if not _ENV_NAME.fullmatch(name):
                self.fail(f"{key}.{name}", "is not a variable name (letters, digits and _, not starting with a digit)")
            elif not isinstance(item, str):
                self.fail(f"{key}.{name}", f"must be a string, got {_kind(item)}")

    def revisions(self, key: str, value: object) -> list[str]:
        if not isinstance(value, list):
            self.fail(key, f'must be a list of {{"revision": ..., "commit": ..., "message": ...}}, got {_kind(value)}')
            return []
        seen: list[str] = []
        for index, entry in enumerate(value):
            where = f"{key}[{index}]"
            if not isinstance(entry, dict):
                self.fail(
                    where, f'must be an object {{"revision": ..., "commit": ..., "message": ...}}, got {_kind(entry)}'
                )
                continue
            for extra in sorted(set(entry) - set(REVISION_KEYS)):
                self.fail(f"{where}.{extra}", f"unknown key (a revision has {', '.join(REVISION_KEYS)})")
            revision = entry.get("revision")
            if not isinstance(revision, str) or not revision.strip():
                self.fail(f"{where}.revision", "is required: a non-empty string such as r7 or a tag")
            elif revision.startswith("-"):
                self.fail(f"{where}.revision", f"must not start with '-' (it becomes an argument), got {revision!r}")
            elif len(revision) > 100:
                self.fail(f"{where}.revision", "is longer than 100 characters")
            elif revision in seen:
                self.fail(f"{where}.revision", f"{revision!r} is listed twice")
            else:
                seen.append(revision)
            self.text(f"{where}.commit", entry.get("commit", ""), 64)
            self.text(f"{where}.message", entry.get("message", ""), None)
        return seen

    def metric_targets(self, key: str, value: object) -> None:
        if not isinstance(value, dict):
            self.fail(
                key,
                f'must be an object such as {{"latency_ms": {{"target": 50, "lower_is_better": true}}}}, got {_kind(value)}',
            )
            return
        for name, target in value.items():
            where = f"{key}.{name}"
            if not isinstance(target, dict):
                self.fail(
                    where, f'must be an object {{"target": N, "lower_is_better": true|false}}, got {_kind(target)}'
                )
                continue
            for extra in sorted(set(target) - {"target", "lower_is_better"}):
                self.fail(f"{where}.{extra}", "unknown key (a metric target has target and lower_is_better)")
            number = target.get("target")
            if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
                self.fail(f"{where}.target", f"must be a finite number, got {_kind(number)}")
            if not isinstance(target.get("lower_is_better", False), bool):
                self.fail(f"{where}.lower_is_better", "must be true or false")

    def by_column(self, column: models.Field, value: object) -> None:
        """A setting without a rule of its own: checked against what its column holds."""
        key = column.name
        if value is None and column.null:
            return
        before = len(self.problems)
        if isinstance(column, models.BooleanField):
            if not isinstance(value, bool):
                self.fail(key, f"must be true or false, got {_kind(value)}")
        elif isinstance(column, models.IntegerField):
            low, high = _int_range(column)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                self.fail(key, f"must be a whole number from {low} to {high}, got {value!r}")
        elif isinstance(column, models.FloatField):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                self.fail(key, f"must be a finite number, got {_kind(value)}")
        elif isinstance(column, models.CharField | models.TextField):
            self.text(key, value, column.max_length)
        if column.choices and value not in {choice for choice, _label in column.flatchoices}:
            self.fail(key, f"must be one of {', '.join(str(c) for c, _ in column.flatchoices)}, got {value!r}")
        if len(self.problems) == before:  # the field's own validators (a range such as 1 to 32)
            try:
                column.run_validators(value)
            except ValidationError as exc:
                self.fail(key, " ".join(exc.messages).rstrip("."))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _int_range(column: models.Field) -> tuple[int, int]:
    low = 0 if isinstance(column, models.PositiveIntegerField | models.PositiveSmallIntegerField) else -INT_MAX - 1
    high = 32767 if isinstance(column, models.SmallIntegerField | models.PositiveSmallIntegerField) else INT_MAX
    return low, high


def validate(document: object, *, name: str | None = None) -> dict[str, Any]:
    """The full settings a document describes (missing keys at their defaults), or SpecInvalid naming each key.

    ``name``: the name the caller addresses (a URL's); the document may omit it, never contradict it.
    """
    check = _Checker()
    if not isinstance(document, dict):
        raise SpecInvalid([Problem("(document)", f"must be a JSON object of settings, got {_kind(document)}")])
    nul = nul_in_json(document)  # PostgreSQL stores no NUL in text or JSON
    if nul:
        raise SpecInvalid([Problem("(document)", nul)])
    try:  # JSON's "\ud800" decodes to a lone surrogate, which is not text and cannot be stored
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SpecInvalid(
            [Problem("(document)", "holds a lone surrogate (\\ud800 to \\udfff), which is not text")]
        ) from None
    known = keys()
    for key in document:
        if key in NOT_BUILT:
            check.fail(key, NOT_BUILT[key])
        elif key not in known:
            check.fail(key, f"unknown key (known: {', '.join(known)})")
    data = defaults() | {k: v for k, v in document.items() if k in known}
    if name is not None:
        if "name" in document and document["name"] != name:
            check.fail("name", f"is {document['name']!r} but the request addresses {name!r}")
        data["name"] = name
    elif "name" not in document:
        check.fail("name", "is required: the environment's name (a slug such as staging)")
    _check_settings(check, data)
    if check.problems:
        raise SpecInvalid(check.problems)
    return data


def _check_settings(check: _Checker, data: dict[str, Any]) -> None:
    revisions: list[str] = []
    for column in setting_fields():
        key, value = column.name, data[column.name]
        if key == "name":
            if not isinstance(value, str) or not _SLUG.fullmatch(value) or len(value) > 64:
                check.fail(key, f"must be a slug (letters, digits, - and _; at most 64 characters), got {value!r}")
        elif key in COMMAND_KEYS:
            check.arguments(key, value, PLACEHOLDERS)
        elif key in SUBSET_KEYS:
            check.subset(key, value, SUBSET_KEYS[key])
        elif key == "env_vars":
            check.env_vars(key, value)
        elif key == "revisions":
            revisions = check.revisions(key, value)
        elif key == "metric_targets":
            check.metric_targets(key, value)
        elif key == "repository":
            check.repository(key, value)
        elif key == "setup_cache_files":
            check.relative_files(key, value)
        else:
            check.by_column(column, value)
    for key in ("timeout_s", "deploy_timeout_s", "health_check_timeout_s"):
        if key in data and isinstance(data[key], int) and data[key] < 1:
            check.fail(key, "must be at least 1 (seconds)")
    if "unreachable_share" in data and isinstance(data["unreachable_share"], int) and data["unreachable_share"] > 100:
        check.fail("unreachable_share", "is a percentage: 0 (off) to 100")
    default = data.get("default_revision")
    if isinstance(default, str) and default and revisions and default not in revisions:
        check.fail("default_revision", f"{default!r} is not among the revisions ({', '.join(revisions)})")


# -- applying -----------------------------------------------------------------------------------------------


def apply(document: object, *, name: str | None = None) -> Applied:
    """Create or update the environment a document describes; nothing changes when it is invalid."""
    data = validate(document, name=name)
    with transaction.atomic():
        env = Environment.objects.select_for_update().filter(name=data["name"]).first()
        created = env is None
        if created:
            env = Environment(name=data["name"])
        changes = [(key, getattr(env, key) if not created else None, value) for key, value in data.items()]
        changes = [(k, old, new) for k, old, new in changes if created or old != new]
        for key, value in data.items():
            setattr(env, key, value)
        if created or changes:
            env.save()
    return Applied(environment=env, created=created, changes=changes)
