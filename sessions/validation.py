"""Refuse input the database cannot hold, with a 400 that names the field, before any view touches it.

PostgreSQL refuses a NUL character (``\\x00``) in text and in JSON, and integers past its column's range;
either used to surface as an HTTP 500 from deep inside a query. ``RejectNulMiddleware`` checks every
query parameter and form field (names, values and uploaded file names) of every page once, so no form
handler has to remember; the JSON API checks its own bodies with ``nul_in_json`` after its token check,
so that an anonymous caller cannot make the server parse a large upload.

``whole_number`` is the one parser for ids and counts that arrive as text: ASCII digits only
(``"²".isdigit()`` is true but ``int("²")`` fails; ``int("١")`` is 1), within a range the column holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from importlib import import_module

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, QueryDict

INT_MAX = 2**31 - 1  # PostgreSQL ``integer``: Django's IntegerField and PositiveIntegerField
BIGINT_MAX = 2**63 - 1  # ``bigint``: every primary key here (BigAutoField)
NUL = "\x00"
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class BadInput(ValueError):
    """A value the request cannot use; ``field`` names where it came from, the message says what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def whole_number(value: object, field: str, *, minimum: int = 1, maximum: int = INT_MAX) -> int:
    """``value`` (an int or a string of ASCII digits, optionally negative) as an int in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadInput(field, f"{field} must be a whole number from {minimum} to {maximum}, got {value!r}")
    text = value.strip() if isinstance(value, str) else str(value)
    digits = text[1:] if text.startswith("-") else text
    if not _DIGITS.fullmatch(digits) or len(digits) > 30 or not minimum <= int(text) <= maximum:
        raise BadInput(field, f"{field} must be a whole number from {minimum} to {maximum}, got {value!r}")
    return int(text)


def _nul_message(name: str, where: str = "") -> str:
    return f"{where}{name!r} holds a NUL character (\\x00), which cannot be stored or searched; remove it"


def nul_in_query(query: QueryDict, where: str) -> str | None:
    """The message for the first name or value of a query string or form that holds a NUL, or None."""
    for name, values in query.lists():
        if NUL in name:
            return _nul_message(name, f"the name of {where} ")
        if any(NUL in value for value in values):
            return _nul_message(name, f"{where} ")
    return None


def nul_in_files(names: Iterable[str]) -> str | None:
    """The first multipart file field whose name holds a NUL (Django drops unprintable characters from file names)."""
    name = next((name for name in names if NUL in name), None)
    return _nul_message(name, "the name of the file field ") if name is not None else None


def nul_in_form(request: HttpRequest) -> str | None:
    """Query string, form fields and uploaded file names of a request: the first NUL found, or None."""
    return (
        nul_in_query(request.GET, "query parameter")
        or (nul_in_query(request.POST, "form field") if request.method == "POST" else None)
        or (nul_in_files(request.FILES.keys()) if request.method == "POST" else None)
    )


def nul_in_json(data: object) -> str | None:
    """The first key or string of a decoded JSON document that holds a NUL, named by its path (``tests[2]``).

    Iterative: ``json.loads`` accepts nesting deep enough that a recursive walk would overflow the stack.
    """
    stack: list[tuple[str, object]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return _nul_message(path or "request body")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else str(key)
                if NUL in str(key):
                    return _nul_message(name, "the field name ")
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def forget_nul_cookies(request: HttpRequest) -> list[str]:
    """Treat a cookie holding a NUL as absent; a session cookie with one becomes a fresh, empty session.

    No cookie loopdash sets can hold a NUL, and the session key goes into a query when the session is
    read. Dropping it (the visitor is logged out) beats a 400 that every later request would repeat.
    """
    bad = [name for name, value in request.COOKIES.items() if NUL in name or NUL in value]
    for name in bad:
        del request.COOKIES[name]
    if settings.SESSION_COOKIE_NAME in bad and hasattr(request, "session"):
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(None)
    return bad


class RejectNulMiddleware:
    """400 for a NUL in any query parameter or form field of a page, naming it; cookies with one are dropped.

    A ``process_view`` hook, listed after ``LoginRequiredMiddleware``: anonymous visitors are sent to
    log in before any form is read. Views marked ``checks_own_input`` (the token-authenticated API)
    get only their query string checked here and check their bodies after authenticating.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        forget_nul_cookies(request)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        if getattr(view_func, "checks_own_input", False):
            message = nul_in_query(request.GET, "query parameter")
            return JsonResponse({"error": message}, status=400) if message else None
        message = nul_in_form(request)
        if message is None:
            return None
        return HttpResponseBadRequest(f"Bad request: {message}.\n", content_type="text/plain; charset=utf-8")
