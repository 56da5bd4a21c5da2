"""System checks that warn when a production setting is missing."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register(deploy=True)
def production_settings(app_configs: object, **kwargs: object) -> list[Warning]:
    warnings = []
    if getattr(settings, "USING_DEFAULT_SECRET_KEY", False):
        warnings.append(Warning("SECRET_KEY is not set; the development key is in use.", id="loopdash.W001"))
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        warnings.append(Warning("DATABASE_URL is not set; SQLite is for trying loopdash out.", id="loopdash.W002"))
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        warnings.append(
            Warning("CELERY_BROKER_URL is not set; the filesystem broker serves one machine.", id="loopdash.W003")
        )
    return warnings
