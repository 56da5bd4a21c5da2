"""API tokens for CI: only a hash is stored; a scope and an optional expiry."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token for CI. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # None: never expires. From this instant on the token is refused (401).
    expires_at = models.DateTimeField(null=True, blank=True)
    # The scope is three flags (what the token may do; the user's role still applies on top).
    # Tokens issued before scopes existed got all three, so they kept working.
    scope_read = models.BooleanField("read", default=True, help_text="GET runs and results.")
    scope_upload = models.BooleanField("upload", default=True, help_text="Upload result files.")
    scope_trigger = models.BooleanField("trigger", default=True, help_text="Trigger deploys and test runs.")

    SCOPES = ("read", "upload", "trigger")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def scopes(self) -> list[str]:
        return [name for name in self.SCOPES if getattr(self, f"scope_{name}")]
