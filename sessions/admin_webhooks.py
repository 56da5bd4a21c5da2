"""Admin pages for webhooks (admins add, change and remove them), their deliveries (read-only: what was
sent, how often, and the last error) and quarantines (the list, for looking; people change them on the
test and signature pages). Loaded by ``admin.py``."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .models import WEBHOOK_EVENTS, Quarantine, Webhook, WebhookDelivery
from .services.webhooks import Invalid, clean_events, clean_url


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in WEBHOOK_EVENTS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: every event.",
    )

    class Meta:
        model = Webhook
        fields = ["url", "secret", "events", "format", "sessions", "active"]
        widgets = {"secret": forms.PasswordInput(render_value=True)}

    def clean_url(self) -> str:
        try:
            return clean_url(self.cleaned_data.get("url"))
        except Invalid as exc:
            raise ValidationError(str(exc).removeprefix("url: ")) from None

    def clean_events(self) -> list[str]:
        try:
            return clean_events(self.cleaned_data.get("events") or [])
        except Invalid as exc:
            raise ValidationError(str(exc).removeprefix("events: ")) from None


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ["created_at", "event", "status", "attempts", "response_code", "last_error"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True
    ordering = ["-created_at", "-id"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).order_by("-created_at", "-id")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ["id", "url", "format", "event_list", "active", "created_at"]
    list_filter = ["active", "format"]
    filter_horizontal = ["sessions"]
    inlines = [DeliveryInline]

    @admin.display(description="events")
    def event_list(self, hook: Webhook) -> str:
        return ", ".join(hook.events) or "all"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every delivery as sent: read-only (no one edits what was sent)."""

    list_display = ["id", "webhook", "event", "status", "attempts", "response_code", "last_error", "created_at"]
    list_filter = ["status", "event"]
    list_select_related = ["webhook"]
    readonly_fields = [
        "webhook",
        "event",
        "payload",
        "status",
        "attempts",
        "response_code",
        "last_error",
        "created_at",
        "last_attempt_at",
        "delivered_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Quarantine)
class QuarantineAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "environment", "reason", "until", "created_by", "ended_at"]
    list_filter = ["environment"]
    list_select_related = ["case", "environment", "created_by"]
    search_fields = ["case__nodeid", "reason"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the test and signature pages (and the API) check the date, the reason and the test

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
