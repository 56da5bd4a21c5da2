"""API tokens: random, shown once, stored as SHA-256 so a database leak leaks no token.

A token may carry an expiry and a scope: which of read, upload and trigger it may
do. The scope narrows what the token's user may do; it never widens it (the API
views still check the user's role).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from ..models import ApiToken

PREFIX = "ld_"
SCOPES = ApiToken.SCOPES


class TokenRefused(Exception):
    """A presented token may not be used for this request; the message says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scope(text: str) -> list[str]:
    """'read,upload' -> ['read', 'upload']; refuse unknown or empty scopes by name."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"scope is empty: give one or more of {', '.join(SCOPES)}, comma-separated")
    unknown = [name for name in names if name not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}, comma-separated")
    return [name for name in SCOPES if name in names]


def expiry_from_date(day: date) -> datetime:
    """A token 'expiring on' a day is refused from that day's first moment, in TIME_ZONE."""
    return timezone.make_aware(datetime.combine(day, time.min))


def new_token() -> tuple[str, str, str]:
    """A fresh token, its displayable prefix and its digest: (token, prefix, token_hash)."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, token[:10], _digest(token)


def issue_token(
    user: AbstractBaseUser,
    name: str = "",
    *,
    scopes: Iterable[str] = SCOPES,
    expires_at: datetime | None = None,
) -> str:
    """Create a token for a user and return it in clear text (the only time it exists so)."""
    chosen = set(scopes)
    unknown = chosen - set(SCOPES)
    if unknown or not chosen:
        raise ValueError(f"scopes must be one or more of {', '.join(SCOPES)}, got {sorted(chosen)}")
    token, prefix, digest = new_token()
    ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        token_hash=digest,
        expires_at=expires_at,
        **{f"scope_{scope}": scope in chosen for scope in SCOPES},
    )
    return token


def describe_expiry(expires_at: datetime) -> str:
    """The expiry as people read it, in the server's time zone: '2026-05-01 00:00 UTC'."""
    return timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M %Z")


def authenticate_token(token: str, scope: str | None = None) -> AbstractBaseUser:
    """The active user owning a token that may do `scope`; raise TokenRefused otherwise.

    401 for a token that is unknown, revoked, expired or whose user is inactive;
    403 for a valid token whose scope does not include `scope`.
    """
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    found = ApiToken.objects.select_related("user").filter(token_hash=_digest(token)).first() if token else None
    if found is None or not found.user.is_active:
        raise TokenRefused("invalid or revoked token", 401)
    now = timezone.now()
    if found.expires_at is not None and found.expires_at <= now:
        raise TokenRefused(
            f"token expired on {describe_expiry(found.expires_at)}: ask an admin for a new one (manage.py issue_token)",
            401,
        )
    if scope is not None and not getattr(found, f"scope_{scope}"):
        have = ", ".join(found.scopes) or "nothing"
        raise TokenRefused(f"this token's scope does not include {scope} (it allows: {have})", 403)
    ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return found.user


def user_for_token(token: str) -> AbstractBaseUser | None:
    """The active user owning an unexpired token, or None (any scope)."""
    try:
        return authenticate_token(token)
    except TokenRefused:
        return None


def expiry_in_days(days: int) -> datetime:
    return timezone.now() + timedelta(days=days)


def user_model() -> type[AbstractBaseUser]:
    return get_user_model()
