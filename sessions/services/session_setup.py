"""Creating a session from the sessions page: a title, a goal and an environment that already exists.

Environments stay an admin's (they hold the commands workers run); anyone who annotates (engineers,
operators, admins) may start a session on one. Problems are named by field so the form can show each
next to its input; nothing is created unless every field is good.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from ..models import Environment, LoopSession
from .environments import Problem

RESERVED_SLUGS = frozenset({"new", "create"})  # /sessions/new/ and /sessions/create/ are pages


class SessionInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(str(problems[0]))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class NewSession:
    title: str
    slug: str = ""
    mission: str = ""
    goal_pass_rate: str = "100"
    goal_priority: str = ""
    environment: str = ""


def _slug_for(spec: NewSession, problems: list[Problem]) -> str:
    slug = spec.slug.strip() or slugify(spec.title)[:100].strip("-")
    if not slug:
        problems.append(Problem("slug", "is needed: the title has no letters or digits to make one from"))
    elif slug != slugify(slug) or len(slug) > 100:
        problems.append(Problem("slug", f"must be lowercase letters, digits and - (at most 100), got {slug!r}"))
    elif slug in RESERVED_SLUGS:
        problems.append(Problem("slug", f"{slug!r} is a page's address (/sessions/{slug}/): choose another"))
    elif LoopSession.objects.filter(slug=slug).exists():
        problems.append(Problem("slug", f"{slug!r} is taken by another session: choose another"))
    return slug


def _goal(text: str, problems: list[Problem]) -> float:
    try:
        value = float(text.strip() or "100")
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        problems.append(Problem("goal_pass_rate", f"must be a percentage from 0 to 100, got {text!r}"))
    return value


def create_session(spec: NewSession) -> LoopSession:
    """The new, empty session; SessionInvalid names every bad field and nothing is stored."""
    problems: list[Problem] = []
    title = spec.title.strip()
    if not title:
        problems.append(Problem("title", "is required"))
    elif len(title) > 200:
        problems.append(Problem("title", f"is {len(title)} characters long; at most 200"))
    slug = _slug_for(spec, problems)
    goal = _goal(spec.goal_pass_rate, problems)
    priority = spec.goal_priority.strip()
    if len(priority) > 10:
        problems.append(Problem("goal_priority", "is a priority such as P1 (at most 10 characters)"))
    environment = Environment.objects.filter(name=spec.environment).first() if spec.environment else None
    if environment is None:
        problems.append(
            Problem(
                "environment",
                "choose an existing environment" if not spec.environment else f"no environment {spec.environment!r}",
            )
        )
    if problems:
        raise SessionInvalid(problems)
    try:
        with transaction.atomic():
            return LoopSession.objects.create(
                title=title,
                slug=slug,
                mission=spec.mission.strip(),
                goal_pass_rate=goal,
                goal_priority=priority,
                environment=environment,
            )
    except IntegrityError:  # created by someone else between the check and the insert
        raise SessionInvalid([Problem("slug", f"{slug!r} is taken by another session: choose another")]) from None
