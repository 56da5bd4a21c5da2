from __future__ import annotations

from django.apps import AppConfig


class LoopSessionsConfig(AppConfig):
    """The loopdash app. Its label avoids the clash with django.contrib.sessions."""

    name = "sessions"
    label = "loop_sessions"
    verbose_name = "Test-deploy loops"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401
