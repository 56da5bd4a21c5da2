"""Create the role groups after every migrate, so a fresh database has them."""

from __future__ import annotations

from django.db.models.signals import post_migrate
from django.dispatch import receiver

from .roles import ensure_groups


@receiver(post_migrate)
def create_role_groups(sender: object, **kwargs: object) -> None:
    if getattr(sender, "label", None) != "loop_sessions":
        return
    ensure_groups()
