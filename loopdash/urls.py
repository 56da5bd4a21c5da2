from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from loopdash.throttle import ThrottledLoginView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The login page says how many failures pause logins, and for how long (django-axes).
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("sessions.api_urls")),
    path("", include("sessions.urls_operate")),
    path("", include("sessions.urls_setup")),  # before sessions.urls: /sessions/new/ is not a session's slug
    path("", include("sessions.urls")),
]
