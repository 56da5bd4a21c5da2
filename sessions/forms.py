"""What the pages read from query strings and forms, parsed in one place.

Query strings are read leniently: a value that is not what the page expects (a cursor that is no
number, an unknown outcome) means "not given", never an error page, because links get cut and edited
by hand. Posted forms are passed on to the services, which check them and say which field was wrong
(``services.triage.Invalid``, ``work.errors.Refused``); here they are only taken apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import QueryDict

from .models import Outcome, TestRun

TRUE_VALUES = ("1", "on", "true")


def optional_int(value: object) -> int | None:
    """An integer, or None for a missing or malformed value."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def cursor(value: str | None) -> int | None:
    """A keyset cursor (a row id): a whole number not below zero, else None (start from the first page)."""
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def checked(value: str | None) -> bool:
    """A checkbox or a flag: "1", "on" or "true"."""
    return value in TRUE_VALUES


def edit_target(value: str) -> dict:
    """What a page opens in edit mode: ``?edit=title``, ``?edit=<analysis>`` or ``?edit=<analysis>-<step>``."""
    if value == "title":
        return {"title": True}
    analysis, _, step = value.partition("-")
    return {"analysis": optional_int(analysis), "step": optional_int(step)}


# -- query strings ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResultFilters:
    """The run page's results filters, read leniently from a query string: a bad value means "no filter"."""

    outcome: str = ""
    q: str = ""
    priority: str = ""
    suspect: bool = False

    @classmethod
    def from_query(cls, query: QueryDict) -> ResultFilters:
        outcome = query.get("outcome", "")
        return cls(
            outcome=outcome if outcome in Outcome.values else "",
            q=query.get("q", "").strip()[:200],
            priority=query.get("priority", "").strip()[:10],
            suspect=checked(query.get("suspect", "")),
        )

    @property
    def active(self) -> bool:
        return bool(self.outcome or self.q or self.priority or self.suspect)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """The run page's query string: the results filters and the keyset cursor (``after`` or ``before``)."""

    filters: ResultFilters
    after: int | None
    before: int | None

    @classmethod
    def from_query(cls, query: QueryDict) -> RunQuery:
        return cls(
            ResultFilters.from_query(query), after=cursor(query.get("after")), before=cursor(query.get("before"))
        )


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """The session page's query string: a partial to answer with, older cycles, a criterion being edited."""

    partial: str
    cycles_before: int | None
    edit: int | None

    @classmethod
    def from_query(cls, query: QueryDict) -> SessionQuery:
        return cls(
            partial=query.get("partial", ""),
            cycles_before=optional_int(query.get("cycles_before")),
            edit=optional_int(query.get("edit")),
        )


@dataclass(frozen=True, slots=True)
class CompareQuery:
    """The comparison's query string: the other run (``?with=``, unless the URL names it), a list, its cursor."""

    other: int | None
    list: str
    after: int | None

    @classmethod
    def from_query(cls, query: QueryDict, *, other: int | None = None) -> CompareQuery:
        return cls(
            other=other if other is not None else optional_int(query.get("with")),
            list=query.get("list", ""),
            after=cursor(query.get("after")),
        )


@dataclass(frozen=True, slots=True)
class SignatureQuery:
    """The signature page's query string: a partial (``header``, ``analysis`` or one part of an analysis:
    ``fields``, ``whys``), what is being edited, and where the keyboard goes after a Cancel (``focus``:
    the step, or the analysis whose fields were open)."""

    partial: str
    analysis: int | None
    editing: dict
    focus: int | None = None

    @classmethod
    def from_query(cls, query: QueryDict) -> SignatureQuery:
        return cls(
            partial=query.get("partial", ""),
            analysis=optional_int(query.get("analysis")),
            editing=edit_target(query.get("edit", "")),
            focus=optional_int(query.get("focus")),
        )


# -- posted forms -----------------------------------------------------------------------------------------


def criterion_data(post: QueryDict) -> dict:
    """A new criterion's fields as ``services.criteria.add_criterion`` reads them ("tests" always present)."""
    return post.dict() | {"tests": post.get("tests", "")}


def merge_target_id(post: QueryDict) -> int | None:
    """The signature to merge into: ``target_id`` (the search box) or ``target`` (the list)."""
    return optional_int(post.get("target_id")) or optional_int(post.get("target"))


def revision(post: QueryDict) -> str | None:
    """The revision to deploy; None for the environment's newest."""
    return post.get("revision") or None


def rollback(post: QueryDict) -> bool:
    """The deploy form's "roll back" box: a deploy of an older revision than the one deployed now."""
    return post.get("rollback") in ("1", "on", "true")


@dataclass(frozen=True, slots=True)
class RerunForm:
    """A rerun: all tests of a run, its failed and errored ones, or the chosen tests (TestCase ids)."""

    scope: str
    case_ids: list[str]

    @classmethod
    def from_post(cls, post: QueryDict) -> RerunForm:
        return cls(scope=post.get("scope") or TestRun.Scope.ALL, case_ids=post.getlist("tests"))


@dataclass(frozen=True, slots=True)
class SubsetForm:
    """The session page's "Run a subset": a marker and/or keyword expression, or ``subset`` = p1 (the P1
    tests), signature (with ``signature``: its tests) or tests (with ``tests``: case ids ticked on a list).

    A blank box means "not given" (the other box, or the P1 button, says what to run); the services
    check what is given and name the field that is wrong.
    """

    marker: str | None
    keyword: str | None
    subset: str | None
    signature: str | None = None  # with subset "signature": its id
    case_ids: tuple[str, ...] = ()  # with subset "tests": the TestCase ids ticked on a test list

    @classmethod
    def from_post(cls, post: QueryDict) -> SubsetForm:
        """Each button names its subset; fields of another subset posted by the same page are ignored."""

        def given(key: str) -> str | None:
            value = post.get(key, "")
            return value if value.strip() else None

        subset = given("subset")
        return cls(
            marker=given("marker"),
            keyword=given("keyword"),
            subset=subset,
            signature=given("signature") if subset == "signature" else None,
            case_ids=tuple(post.getlist("tests")) if subset == "tests" else (),
        )

    @property
    def empty(self) -> bool:
        return self.marker is None and self.keyword is None and self.subset is None
