"""The Celery app. Configuration lives in Django settings under the CELERY_ prefix."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopdash.settings")

app = Celery("loopdash")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work for `celery beat` (or `worker -B`): the reaper declares runs and deployments whose
# heartbeat stopped `lost` (bound: LOOPDASH_LOST_AFTER_S, 60 s), so a run is marked within ~75 s.
app.conf.beat_schedule = {
    "reap-lost-work": {"task": "sessions.tasks.reap", "schedule": 15.0, "options": {"expires": 14}},
    # Retention (docs/RETENTION.md): old results lose their text, batch by batch; a missed hour is harmless.
    "prune-detail": {"task": "sessions.tasks.prune_detail", "schedule": 3600.0, "options": {"expires": 3000}},
    # Webhook deliveries whose task the broker refused stay pending: sent again once overdue (work/webhooks.py).
    "resend-webhooks": {"task": "sessions.tasks.resend_webhooks", "schedule": 60.0, "options": {"expires": 55}},
}
