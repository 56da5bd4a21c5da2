"""Page URLs. Models' get_absolute_url and the CLI's printed links use these names."""

from __future__ import annotations

from django.urls import path

from . import health, views

urlpatterns = [
    path("", views.sessions_list, name="sessions_list"),
    path("sessions/<slug:slug>/", views.session_detail, name="session_detail"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("signatures/<int:pk>/", views.signature_detail, name="signature_detail"),
    path("tests/<int:pk>/", views.test_detail, name="test_detail"),
    path("deployments/<int:pk>/", views.deployment_detail, name="deployment_detail"),
    path("healthz", health.healthz, name="healthz"),
]
