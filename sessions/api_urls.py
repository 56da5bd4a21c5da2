from __future__ import annotations

from django.urls import path, re_path

from . import api, api_environments, api_live, api_quarantine

urlpatterns = [
    path("openapi.json", api.openapi, name="api_openapi"),
    path("sessions/<slug:slug>/runs", api.upload_run, name="api_upload_run"),
    path("sessions/<slug:slug>/trigger", api.trigger, name="api_trigger"),
    path("sessions/<slug:slug>", api.session_detail, name="api_session_detail"),
    path("runs/<int:pk>", api.run_detail, name="api_run_detail"),
    path("sessions/<slug:slug>/runs/live", api_live.open_live_run, name="api_open_live_run"),
    path("runs/<int:pk>/results", api_live.run_results, name="api_run_results"),  # GET pages, POST adds a batch
    path("runs/<int:pk>/finish", api_live.finish, name="api_run_finish"),
    path("runs/<int:pk>/exclude", api.exclude_run, name="api_run_exclude"),
    path("runs/<int:pk>/include", api.include_run, name="api_run_include"),
    path("environments/<slug:name>/quarantine", api_quarantine.environment_quarantine, name="api_quarantine"),
    path("environments/<slug:name>", api_environments.environment, name="api_environment"),
    # Last: any other path under /api/v1/ (a slug with a space, an id that is not a number) is a JSON 404.
    re_path(r"^", api.not_found, name="api_not_found"),
]
