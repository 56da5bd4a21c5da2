"""Reads for owners and discussion: a signature's thread and owner, and "my signatures"."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Case, IntegerField, Value, When

from ..models import FailureSignature, SignatureComment
from ..services.discussion import assignable_users

COMMENTS_SHOWN = 200
MY_SIGNATURES_SHOWN = 20
# Open first: anything not verified yet needs its owner; verified ones are done.
_CLOSED = (FailureSignature.Status.VERIFIED,)


def discussion_section(signature: FailureSignature, *, can_annotate: bool, user: object) -> dict:
    """The owner card and the comment thread (two queries; three for those who may assign)."""
    comments = list(
        SignatureComment.objects.filter(signature_id=signature.pk)
        .select_related("author")
        .order_by("created_at", "id")[:COMMENTS_SHOWN]
    )
    return {
        "signature": signature,
        "comments": comments,
        "assignable": list(assignable_users().only("id", "username")[:200]) if can_annotate else [],
        "can_annotate": can_annotate,
        "me_id": getattr(user, "pk", None),
    }


def my_signatures(user: AbstractBaseUser | AnonymousUser, limit: int = MY_SIGNATURES_SHOWN) -> list[FailureSignature]:
    """Signatures assigned to ``user``: open ones first, then the most recently seen. One query."""
    if not user.is_authenticated:
        return []
    closed = Case(When(status__in=_CLOSED, then=Value(1)), default=Value(0), output_field=IntegerField())
    return list(
        FailureSignature.objects.filter(assignee_id=user.pk, merged_into__isnull=True)
        .annotate(closed=closed)
        .select_related("environment")
        .only("id", "title", "status", "result_count", "last_seen_at", "environment__name")
        .order_by("closed", "-last_seen_at", "-id")[:limit]
    )
