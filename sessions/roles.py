"""Roles are Django groups: viewer reads, engineer annotates, operator also triggers runs and deploys.

Admins (superusers) may do everything. Checks go through the helpers here so
that views, the API and templates agree on who may do what.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

VIEWER = "viewer"
ENGINEER = "engineer"
OPERATOR = "operator"
ROLES = (VIEWER, ENGINEER, OPERATOR)

# Which groups grant each capability.
_ANNOTATE = {ENGINEER, OPERATOR}
_OPERATE = {OPERATOR}


def ensure_groups() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def _groups(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_loopdash_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._loopdash_groups = cached
    return cached


def can_annotate(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or _groups(user) & _ANNOTATE))


def can_operate(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or _groups(user) & _OPERATE))


def can_administer(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Admins (superusers) only: environments hold the commands that workers run."""
    return bool(user.is_authenticated and user.is_superuser)


def role_of(user: AbstractBaseUser | AnonymousUser) -> str:
    if not user.is_authenticated:
        return "anonymous"
    if user.is_superuser:
        return "admin"
    groups = _groups(user)
    for name in (OPERATOR, ENGINEER, VIEWER):
        if name in groups:
            return name
    return VIEWER


def role_required(allowed: Callable[[AbstractBaseUser | AnonymousUser], bool], refusal: str) -> Callable:
    """A view decorator: users ``allowed`` does not accept get the styled 403 page saying ``refusal``.

    Anonymous users never get this far on the pages (LoginRequiredMiddleware sends them to log in).
    The wrapped view keeps its name and module, which ``test_permissions`` classifies endpoints by.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if not allowed(request.user):
                raise PermissionDenied(refusal)  # templates/403.html says it, in the page's style
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# Engineers, operators and admins annotate (triage, five whys, criteria); viewers get 403.
annotator_required = role_required(can_annotate, "Only engineers, operators and admins may change triage data.")
# Operators and admins deploy, run, rerun and cancel; everyone else gets 403.
operator_required = role_required(can_operate, "Only operators and admins may deploy, run, rerun or cancel.")
# Admins only: creating and editing environments (the commands workers run).
admin_required = role_required(
    can_administer, "Only admins may create or change environments: their commands run on the workers."
)
