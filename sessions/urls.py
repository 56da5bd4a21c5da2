"""Page URLs. Models' get_absolute_url and the CLI's printed links use these names.

Every write is a POST to its own URL (never a GET page that also accepts POST), so that
``test_permissions`` can find them all from the resolver.
"""

from __future__ import annotations

from django.urls import path

from . import health, views, views_discussion, views_quarantine

urlpatterns = [
    path("", views.sessions_list, name="sessions_list"),
    path("sessions/<slug:slug>/", views.session_detail, name="session_detail"),
    path("sessions/<slug:slug>/export.md", views.session_export, name="session_export"),
    path("sessions/<slug:slug>/criteria/", views.criterion_add, name="criterion_add"),
    path("criteria/<int:pk>/", views.criterion_edit, name="criterion_edit"),
    path("criteria/<int:pk>/tick/", views.criterion_tick, name="criterion_tick"),
    path("criteria/<int:pk>/delete/", views.criterion_delete, name="criterion_delete"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/compare/", views.run_compare, name="run_compare"),
    path("runs/<int:pk>/compare/<int:other>/", views.run_compare, name="run_compare_with"),
    path("signatures/<int:pk>/", views.signature_detail, name="signature_detail"),
    path("signatures/<int:pk>/title/", views.signature_title, name="signature_title"),
    path("signatures/<int:pk>/status/", views.signature_status, name="signature_status"),
    path("signatures/<int:pk>/merge/", views.signature_merge, name="signature_merge"),
    path("signatures/<int:pk>/assign/", views_discussion.signature_assign, name="signature_assign"),
    path("signatures/<int:pk>/comments/", views_discussion.signature_comment, name="signature_comment"),
    path("signatures/<int:pk>/analyses/", views.analysis_create, name="analysis_create"),
    path("analyses/<int:pk>/", views.analysis_edit, name="analysis_edit"),
    path("analyses/<int:pk>/delete/", views.analysis_delete, name="analysis_delete"),
    path("analyses/<int:pk>/steps/", views.step_add, name="step_add"),
    path("analyses/<int:pk>/steps/<int:step>/", views.step_edit, name="step_edit"),
    path("analyses/<int:pk>/steps/<int:step>/move/", views.step_move, name="step_move"),
    path("analyses/<int:pk>/steps/<int:step>/delete/", views.step_delete, name="step_delete"),
    path("analyses/<int:pk>/fixes/", views.fix_add, name="fix_add"),
    path("tests/<int:pk>/", views.test_detail, name="test_detail"),
    path("tests/<int:pk>/quarantine/", views_quarantine.test_quarantine, name="test_quarantine"),
    path("tests/<int:pk>/quarantine/end/", views_quarantine.test_quarantine_end, name="test_quarantine_end"),
    path("signatures/<int:pk>/quarantine/", views_quarantine.signature_quarantine, name="signature_quarantine"),
    path(
        "environments/<slug:name>/quarantine/",
        views_quarantine.environment_quarantine,
        name="environment_quarantine",
    ),
    path("deployments/<int:pk>/", views.deployment_detail, name="deployment_detail"),
    path("healthz", health.healthz, name="healthz"),
]
