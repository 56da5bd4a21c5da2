"""Login throttling (django-axes) against the real database: a lockout after the configured number
of failures, explained on the page; it is per username and address, ends after the cool-off or when
an admin lifts it, and counts failures on the admin's login page too.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def fast_hashes(settings) -> None:
    """Dozens of password checks per test: a fast hasher keeps them quick (not what is tested)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def attempt(client: Client, username: str, password: str, path: str = LOGIN, **extra: str):
    return client.post(path, {"username": username, "password": password}, **extra)


def fail(client: Client, username: str, times: int, **extra: str) -> list[int]:
    return [attempt(client, username, "wrong-password", **extra).status_code for _ in range(times)]


def logged_in_as(client: Client) -> str | None:
    response = client.get("/")
    return response.context["user"].get_username() if response.status_code == 200 else None


def test_the_defaults_are_five_failures_and_fifteen_minutes() -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_a_failed_login_says_when_logins_will_be_paused(client, viewer) -> None:
    response = attempt(client, "vera", "nope")
    assert response.status_code == 200
    page = response.content.decode()
    assert "didn't match" in page
    assert (
        "After 5 failed attempts in a row, logins with this username from your address are paused for 15 minutes"
        in page
    )


def test_the_fifth_failure_locks_out_even_the_right_password(client, viewer) -> None:
    assert fail(client, "vera", 4) == [200, 200, 200, 200]
    locked = attempt(client, "vera", "wrong-password")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert 'id="locked-out"' in page and "Login paused" in page
    assert "Logins as <strong>vera</strong> from your address" in page
    assert "after 5 failed attempts" in page and "Try again in 15 minutes" in page
    assert "manage.py axes_reset_username NAME" in page
    # Locked: the right password is refused too, and nobody is logged in.
    assert attempt(client, "vera", "pw-vera").status_code == 429
    assert logged_in_as(client) is None


def test_the_lockout_is_per_username_and_address(client, viewer, engineer) -> None:
    fail(client, "vera", 5)
    assert attempt(client, "vera", "pw-vera").status_code == 429
    # Another user from the same address is not locked out...
    assert attempt(client, "erin", "pw-erin").status_code == 302
    # ...nor the same user from another address (an attacker cannot lock vera out from afar).
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    assert attempt(elsewhere, "vera", "pw-vera").status_code == 302
    assert logged_in_as(elsewhere) == "vera"


def test_failures_on_the_admin_login_count_too(client, admin_user) -> None:
    statuses = [attempt(client, "ada", "wrong", path="/admin/login/?next=/admin/").status_code for _ in range(5)]
    assert statuses[:4] == [200] * 4 and statuses[4] == 429
    assert attempt(client, "ada", "pw-ada").status_code == 429


def test_the_lockout_ends_after_the_cool_off(client, viewer) -> None:
    fail(client, "vera", 5)
    assert attempt(client, "vera", "pw-vera").status_code == 429
    # Sixteen minutes pass since the last attempt.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert attempt(client, "vera", "pw-vera").status_code == 302
    assert logged_in_as(client) == "vera"


def test_a_successful_login_clears_earlier_failures(client, viewer) -> None:
    fail(client, "vera", 4)
    assert attempt(client, "vera", "pw-vera").status_code == 302
    client.post("/accounts/logout/")
    assert fail(client, "vera", 4) == [200] * 4


def test_an_admin_unlocks_a_user_in_the_admin(client, viewer, admin_user) -> None:
    fail(client, "vera", 5)
    assert attempt(client, "vera", "pw-vera").status_code == 429

    admin = Client(REMOTE_ADDR="10.9.9.9")
    admin.force_login(admin_user)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "vera" in listing.content.decode()
    assert "Locked Out" in listing.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.filter(username="vera").values_list("pk", flat=True)]
    done = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert done.status_code == 302
    assert not AccessAttempt.objects.filter(username="vera").exists()
    assert attempt(client, "vera", "pw-vera").status_code == 302


def test_axes_reset_username_unlocks_from_the_command_line(client, viewer, capsys) -> None:
    fail(client, "vera", 5)
    call_command("axes_reset_username", "vera")
    assert "attempts removed" in capsys.readouterr().out
    assert attempt(client, "vera", "pw-vera").status_code == 302


@override_settings(AXES_COOLOFF_TIME=None)
def test_without_a_cool_off_the_page_says_only_an_admin_can_lift_it(client, viewer) -> None:
    assert "until an admin lifts it" in attempt(client, "vera", "nope").content.decode()
    fail(client, "vera", 4)
    locked = attempt(client, "vera", "pw-vera")
    assert locked.status_code == 429
    assert "The pause lasts until an admin lifts it." in locked.content.decode()
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(days=30))
    assert attempt(client, "vera", "pw-vera").status_code == 429


@override_settings(LOOPDASH_PROXY_COUNT=1)
def test_behind_a_proxy_each_client_is_throttled_on_its_own(viewer) -> None:
    """Every request arrives from the proxy's address; the client is what the proxy saw."""
    attacker = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.66")
    vera = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert fail(attacker, "vera", 5)[-1] == 429
    assert AccessAttempt.objects.get().ip_address == "203.0.113.66"
    # Spoofing a forwarded address of its own does not get the attacker out of the lockout.
    spoof = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.99, 203.0.113.66")
    assert attempt(spoof, "vera", "pw-vera").status_code == 429
    assert attempt(vera, "vera", "pw-vera").status_code == 302
