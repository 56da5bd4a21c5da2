from __future__ import annotations

from django.urls import path, re_path

from . import api

urlpatterns = [
    path("openapi.json", api.openapi, name="api_openapi"),
    path("sessions/<slug:slug>/runs", api.upload_run, name="api_upload_run"),
    path("sessions/<slug:slug>/trigger", api.trigger, name="api_trigger"),
    path("runs/<int:pk>", api.run_detail, name="api_run_detail"),
    # Last: any other path under /api/v1/ (a slug with a space, an id that is not a number) is a JSON 404.
    re_path(r"^", api.not_found, name="api_not_found"),
]
