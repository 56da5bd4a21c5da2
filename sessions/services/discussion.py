"""Owners and discussion: assigning a signature to a person, and its comment thread.

Both write a ``SignatureEvent`` too, so the signature's activity (and whoever reads the history)
sees who took a signature on and who said something. Only engineers, operators and admins may own
a signature: a viewer cannot act on it.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet

from .. import roles
from ..models import FailureSignature, SignatureComment
from ..models.discussion import MAX_COMMENT_CHARS
from .signatures import acting_user, record_event
from .triage import Invalid


def assignable_users() -> QuerySet:
    """Active users who may own a signature: engineers, operators and admins, by username."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=[roles.ENGINEER, roles.OPERATOR]))
        .distinct()
        .order_by("username")
    )


def assign(signature: FailureSignature, assignee_id: int | None, user: object) -> FailureSignature:
    """Give the signature to ``assignee_id`` (None: nobody). Refused for a user who may not annotate."""
    assignee: AbstractBaseUser | None = None
    if assignee_id is not None:
        assignee = assignable_users().filter(pk=assignee_id).first()
        if assignee is None:
            raise Invalid("the assignee must be an active engineer, operator or admin")
    with transaction.atomic():
        locked = FailureSignature.objects.select_for_update().get(pk=signature.pk)
        if locked.assignee_id == (assignee.pk if assignee else None):
            return locked
        locked.assignee = assignee
        locked.save(update_fields=["assignee"])
        record_event(locked.pk, "assigned", f"to {assignee.get_username()}" if assignee else "unassigned", user)
    return locked


def add_comment(signature: FailureSignature, body: object, user: object) -> SignatureComment:
    """A comment in Markdown; blank, too long or NUL-bearing text is refused with a one-line reason."""
    text = str(body or "").strip()
    if not text:
        raise Invalid("a comment needs some text")
    if len(text) > MAX_COMMENT_CHARS:
        raise Invalid(f"a comment holds at most {MAX_COMMENT_CHARS:,} characters")
    if "\x00" in text:
        raise Invalid("a comment cannot contain a NUL character")
    with transaction.atomic():
        comment = SignatureComment.objects.create(signature=signature, author=acting_user(user), body=text)
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        record_event(signature.pk, "comment", first[:200], user)
    return comment
