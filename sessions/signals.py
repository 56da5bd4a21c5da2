"""Create the role groups after every migrate, so a fresh database has them."""

from __future__ import annotations

from django.db.models.signals import post_migrate
from django.dispatch import receiver


@receiver(post_migrate)
def create_role_groups(sender, **kwargs) -> None:  # noqa: ANN001, ANN003
    if getattr(sender, "label", None) != "loop_sessions":
        return
    from .roles import ensure_groups

    ensure_groups()
