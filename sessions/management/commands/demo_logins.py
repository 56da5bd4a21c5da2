"""Print the demo users' logins (created by load_demo)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sessions.demo.loader import DEMO_USERS


class Command(BaseCommand):
    help = "Print the demo logins."

    def handle(self, *args, **options) -> None:
        self.stdout.write("Demo logins (user / password — role):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {username:<10} / {password:<14} — {role}")
