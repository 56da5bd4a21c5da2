"""Webhooks: where loopdash tells other systems what happened, and every delivery attempt made.

A ``Webhook`` names a URL, a secret that signs each body (``X-Loopdash-Signature``), the events it
wants (empty: all), a format (loopdash's JSON or a Slack incoming-webhook message) and the sessions it
follows (none: all). A ``WebhookDelivery`` is one event for one webhook: the exact body sent, its
status, how many attempts were made and the last error; workers send it (``work/webhooks.py``).
"""

from __future__ import annotations

from django.db import models

from .loop import LoopSession

EVENTS = (
    "run.finished",
    "signature.new",
    "signature.regressed",
    "fix.verified",
    "fix.did_not_fix",
    "deployment.finished",
)


class Webhook(models.Model):
    class Format(models.TextChoices):
        JSON = "json", "loopdash JSON"
        SLACK = "slack", "Slack incoming webhook"

    url = models.URLField(max_length=1000, help_text="http:// or https:// only.")
    secret = models.CharField(max_length=200, help_text="Signs each body: X-Loopdash-Signature: sha256=<HMAC>.")
    events = models.JSONField(default=list, blank=True, help_text=f"Empty: every event ({', '.join(EVENTS)}).")
    format = models.CharField(max_length=10, choices=Format, default=Format.JSON)
    sessions = models.ManyToManyField(
        LoopSession, blank=True, related_name="webhooks", help_text="Empty: every session."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url[:80]}"

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=50)
    payload = models.TextField(help_text="The exact body POSTed (what the signature covers).")
    status = models.CharField(max_length=20, choices=Status, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_created")]

    def __str__(self) -> str:
        return f"{self.event} to webhook {self.webhook_id}: {self.status}"
