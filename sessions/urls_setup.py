"""URLs of the in-app set-up: new sessions, upload tokens, environments (pages are GET, writes POST)."""

from __future__ import annotations

from django.urls import path

from . import views_setup as views

urlpatterns = [
    path("sessions/new/", views.session_new, name="session_new"),
    path("sessions/create/", views.session_create, name="session_create"),
    path("sessions/<slug:slug>/token/", views.session_token, name="session_token"),
    path("environments/", views.environment_list, name="environment_list"),
    path("environments/new/", views.environment_new, name="environment_new"),
    path("environments/create/", views.environment_create, name="environment_create"),
    path("environments/<slug:name>/edit/", views.environment_edit, name="environment_edit"),
    path("environments/<slug:name>/save/", views.environment_save, name="environment_save"),
]
