from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("openapi.json", api.openapi, name="api_openapi"),
    path("sessions/<slug:slug>/runs", api.upload_run, name="api_upload_run"),
    path("sessions/<slug:slug>/trigger", api.trigger, name="api_trigger"),
    path("runs/<int:pk>", api.run_detail, name="api_run_detail"),
]
