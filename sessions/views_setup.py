"""In-app set-up: start a session, get results into it, and (admins) create and edit environments.

Pages are GETs; every write is a POST to its own URL. Who may: engineers, operators and admins start
sessions and issue themselves an upload token (the roles that may upload results); only admins create
or change environments. An environment form is checked by ``services.environments``, the same rules
as ``manage.py environment apply`` and ``PUT /api/v1/environments/<name>``.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from . import roles, setup_forms
from .models import Environment, LoopSession
from .services import environments
from .services.session_setup import NewSession, SessionInvalid, create_session
from .services.tokens import issue_token

TOKEN_DAYS = 90
SESSION_FIELDS = ("title", "slug", "mission", "goal_pass_rate", "goal_priority", "environment")


def _see_other(url: str) -> HttpResponseRedirect:
    """After a POST that worked: 303, so a reload of the next page never posts again."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _session_form(request: HttpRequest, values: dict, problems: list, status: int = 200) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for problem in problems:
        errors.setdefault(problem.key, []).append(problem.message)
    context = {
        "values": values,
        "errors": errors,
        "problems": problems,
        "environments": Environment.objects.order_by("name").values_list("name", "description"),
        "can_administer": roles.can_administer(request.user),
    }
    return render(request, "sessions/setup/session_new.html", context, status=status)


@require_GET
@roles.annotator_required
def session_new(request: HttpRequest) -> HttpResponse:
    values = {"goal_pass_rate": "100", "environment": request.GET.get("environment", "")}
    return _session_form(request, values, [])


@require_POST
@roles.annotator_required
def session_create(request: HttpRequest) -> HttpResponse:
    values = {key: request.POST.get(key, "") for key in SESSION_FIELDS}
    try:
        session = create_session(NewSession(**values))
    except SessionInvalid as exc:
        return _session_form(request, values, exc.problems, status=422)
    return _see_other(session.get_absolute_url())


@require_POST
@roles.annotator_required
def session_token(request: HttpRequest, slug: str) -> HttpResponse:
    """A new upload token for the user asking, shown once in the curl line (only its hash is kept)."""
    session = get_object_or_404(LoopSession.objects.select_related("environment"), slug=slug)
    expires_at = timezone.now() + timedelta(days=TOKEN_DAYS)
    token = issue_token(
        request.user, f"upload to {session.slug}"[:100], scopes=["read", "upload"], expires_at=expires_at
    )
    context = {"session": session, "token": token, "token_days": TOKEN_DAYS, "issued": True}
    if request.htmx:
        return render(request, "sessions/setup/_getting_started.html", context)
    return render(request, "sessions/setup/token_issued.html", context)


# -- environments (admins) ----------------------------------------------------------------------------------


@require_GET
@roles.admin_required
def environment_list(request: HttpRequest) -> HttpResponse:
    rows = Environment.objects.order_by("name").only("name", "description", "test_command", "deploy_command")
    return render(request, "sessions/setup/environment_list.html", {"environments": rows})


@require_GET
@roles.admin_required
def environment_new(request: HttpRequest) -> HttpResponse:
    return render(request, "sessions/setup/environment_form.html", {"form": setup_forms.form_for(None)})


@require_GET
@roles.admin_required
def environment_edit(request: HttpRequest, name: str) -> HttpResponse:
    env = get_object_or_404(Environment, name=name)
    return render(request, "sessions/setup/environment_form.html", {"form": setup_forms.form_for(env), "env": env})


def _save(request: HttpRequest, name: str | None, env: Environment | None) -> HttpResponse:
    data, form = setup_forms.check_environment(request.POST, name=name)
    if data is None:
        context = {"form": form, "env": env}
        return render(request, "sessions/setup/environment_form.html", context, status=422)
    if name is None and Environment.objects.filter(name=data["name"]).exists():
        form.problems.append(environments.Problem("name", f"{data['name']!r} exists already: edit it instead"))
        return render(request, "sessions/setup/environment_form.html", {"form": form}, status=422)
    applied = environments.apply(data, name=data["name"])
    return _see_other(reverse("environment_edit", args=[applied.environment.name]) + "?saved=1")


@require_POST
@roles.admin_required
def environment_create(request: HttpRequest) -> HttpResponse:
    return _save(request, None, None)


@require_POST
@roles.admin_required
def environment_save(request: HttpRequest, name: str) -> HttpResponse:
    env = get_object_or_404(Environment, name=name)
    return _save(request, env.name, env)
