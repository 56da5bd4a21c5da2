"""URLs of the operate views: actions (POST, operators) and live partials (GET, anyone logged in)."""

from __future__ import annotations

from django.urls import path

from . import views_fix_confirmation, views_logs, views_run_live, views_shards
from . import views_operate as views

urlpatterns = [
    path("sessions/<slug:slug>/deploy/", views.session_deploy, name="operate_deploy"),
    path("sessions/<slug:slug>/run-tests/", views.session_run_tests, name="operate_run_tests"),
    path("sessions/<slug:slug>/run-cycle/", views.session_run_cycle, name="operate_run_cycle"),
    path("sessions/<slug:slug>/run-subset/", views.session_run_subset, name="operate_run_subset"),
    path("signatures/<int:pk>/run-tests/", views.signature_run_tests, name="operate_signature_run_tests"),
    path("signatures/<int:pk>/confirm-fix/", views_fix_confirmation.fix_confirm, name="operate_fix_confirm"),
    path("runs/<int:pk>/rerun/", views.run_rerun, name="operate_rerun"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="operate_run_cancel"),
    path("runs/<int:pk>/exclude/", views.run_exclude, name="operate_run_exclude"),
    path("runs/<int:pk>/include/", views.run_include, name="operate_run_include"),
    path("runs/<int:pk>/progress/", views.run_progress, name="operate_run_progress"),
    path("runs/<int:pk>/shards/", views_shards.run_shards, name="run_shards"),
    path("runs/<int:pk>/log/", views_logs.run_log, name="operate_run_log"),
    path("runs/<int:pk>/live/", views_run_live.run_live, name="run_live"),
    path("deployments/<int:pk>/cancel/", views.deployment_cancel, name="operate_deployment_cancel"),
    path("deployments/<int:pk>/log/", views.deployment_log, name="operate_deployment_log"),
]
