"""API tokens: random, shown once, stored as SHA-256 so a database leak leaks no token."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.utils import timezone

from ..models import ApiToken

PREFIX = "ld_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user, name: str = "") -> str:  # noqa: ANN001
    """Create a token for a user and return it in clear text (the only time it exists so)."""
    token = PREFIX + secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, name=name, prefix=token[:10], token_hash=_digest(token))
    return token


def user_for_token(token: str):  # noqa: ANN201
    """The active user owning a token, or None."""
    if not token:
        return None
    found = ApiToken.objects.select_related("user").filter(token_hash=_digest(token)).first()
    if found is None or not found.user.is_active:
        return None
    ApiToken.objects.filter(pk=found.pk).update(last_used_at=timezone.now())
    return found.user


def user_model():  # noqa: ANN201
    return get_user_model()
