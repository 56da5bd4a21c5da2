"""Owners and discussion of a signature: the comment thread under it.

The assignee itself is a column of ``FailureSignature`` (one owner at a time, read on every board);
comments are rows of their own, written once and never edited, so the thread is also a record.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .triage import FailureSignature

MAX_COMMENT_CHARS = 10_000


class SignatureComment(models.Model):
    """One comment on a signature, in Markdown (rendered without raw HTML; see templatetags/markdown)."""

    signature = models.ForeignKey(FailureSignature, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    body = models.TextField(max_length=MAX_COMMENT_CHARS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["signature", "created_at"], name="sigcomment_signature_at")]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.signature_id}"
