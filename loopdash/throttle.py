"""Login throttling, as people see it: the lockout page and the hint on the login form.

django-axes counts failed logins and decides; this module only explains its
decision in the project's own words (how long, and who can lift it).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def cooloff_minutes() -> int | None:
    """Minutes a lockout lasts, or None when only an admin can lift it."""
    cooloff = settings.AXES_COOLOFF_TIME
    if not cooloff:
        return None
    return max(1, round(cooloff.total_seconds() / 60))


def policy_context() -> dict[str, object]:
    """What the login page says about throttling, from the settings in force."""
    return {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": cooloff_minutes()}


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The page a locked-out login gets (HTTP 429), instead of axes' bare text."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {"username": username, **policy_context()}
    return render(
        request, "registration/locked_out.html", context, status=getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429)
    )


class ThrottledLoginView(LoginView):
    """Django's login view, whose page also says how many failures pause logins and for how long."""

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        return {**super().get_context_data(**kwargs), **policy_context()}
